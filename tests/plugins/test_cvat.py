"""CVAT for video 1.1 tracks, cuboids and skeletons, read from XML written as CVAT writes it and
written back: tracks become Dataloop video annotations (frame, endFrame, objectId, keyframe
snapshots) or, in an image task, shapes on the images their frames are; a real Dataloop video
export is written as tracks and read back the same; bad tracks, skeletons and cuboids are
reported while the rest is read."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from typing import Any

from PIL import Image

from plugins.builtin import coco, cvat, dataloop
from plugins.converters import FolderFiles, ItemAnnotations, Problem, ZipFiles, ZipOutput
from tests.conftest import shared_data


def _zip_of(files: dict[str, str]) -> ZipFiles:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return ZipFiles(zipfile.ZipFile(buffer))


def _read(
    files: Any, sizes: dict[str, tuple[int, int]] | None = None
) -> tuple[list[ItemAnnotations], list[Problem]]:
    items, problems = [], []
    for record in cvat.read(files, (sizes or {}).get):
        (problems if isinstance(record, Problem) else items).append(record)
    return items, problems


def _written(items: list[ItemAnnotations], labels: list[str]) -> tuple[ZipFiles, int]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        left_out = cvat.write(iter(items), labels, ZipOutput(archive))
    return ZipFiles(zipfile.ZipFile(buffer)), left_out


def p(x: float, y: float) -> dict[str, float]:
    return {"x": x, "y": y}


def snapshot(
    frame: int, data: Any, fixed: bool = True, visible: bool = True, **named: Any
) -> dict[str, Any]:
    return {
        "frame": frame,
        "fixed": fixed,
        "label": "car",
        "type": "box",
        "objectVisible": visible,
        "data": data,
        "namedAttributes": named,
    }


def box(x1: float, y1: float, x2: float, y2: float) -> list[dict[str, float]]:
    return [p(x1, y1), p(x2, y2)]


META = """<meta><task><id>7</id><name>street</name><size>20</size><mode>interpolation</mode>
  <overlap>5</overlap><start_frame>0</start_frame><stop_frame>19</stop_frame>
  <labels>
    <label><name>car</name><color>#fa3253</color><type>rectangle</type><attributes>
      <attribute><name>parked</name><mutable>True</mutable><input_type>checkbox</input_type>
        <default_value>false</default_value><values>false
true</values></attribute>
      <attribute><name>color</name><mutable>False</mutable><input_type>select</input_type>
        <default_value>red</default_value><values>red
blue</values></attribute>
    </attributes></label>
    <label><name>road</name><type>polygon</type><attributes></attributes></label>
    <label><name>sign</name><type>points</type><attributes></attributes></label>
    <label><name>wheel</name><type>ellipse</type><attributes></attributes></label>
    <label><name>truck</name><type>cuboid</type><attributes></attributes></label>
  </labels>
  <original_size><width>640</width><height>480</height></original_size>
</task><dumped>2024-05-01 10:00:00.000000+00:00</dumped><source>street.mp4</source></meta>"""

CUBOID = (
    'xtl1="10" ytl1="20" xbl1="10" ybl1="60" xtr1="50" ytr1="20" xbr1="50" ybr1="60" '
    'xtl2="30" ytl2="10" xbl2="30" ybl2="50" xtr2="70" ytr2="10" xbr2="70" ybr2="50"'
)


def _car(frame: int, keyframe: int, outside: int, occluded: int, x: float, parked: str) -> str:
    return (
        f'<box frame="{frame}" keyframe="{keyframe}" outside="{outside}" occluded="{occluded}" '
        f'xtl="{x:.2f}" ytl="20.00" xbr="{x + 100:.2f}" ybr="80.00" z_order="0">'
        f'<attribute name="parked">{parked}</attribute><attribute name="color">red</attribute>'
        "</box>"
    )


VIDEO = f"""<?xml version="1.0" encoding="utf-8"?>
<annotations><version>1.1</version>{META}
  <track id="0" label="car" source="manual">
    {_car(0, 1, 0, 0, 10, "false")}
    {_car(1, 0, 0, 0, 12, "false")}
    {_car(2, 0, 0, 0, 12, "false")}
    {_car(3, 1, 0, 1, 14.5, "true")}
    {_car(5, 1, 1, 1, 14.5, "true")}
    {_car(8, 1, 0, 0, 20, "true")}
    {_car(12, 1, 1, 0, 20, "true")}
  </track>
  <track id="1" label="road" source="auto">
    <polygon frame="2" keyframe="1" outside="0" occluded="0" points="0.00,400.00;640.00,400.00;640.00,480.00" z_order="0"></polygon>
  </track>
  <track id="2" label="sign" source="manual">
    <points frame="0" keyframe="1" outside="1" occluded="0" points="5.00,5.00" z_order="0"></points>
    <points frame="4" keyframe="1" outside="0" occluded="0" points="300.50,200.25" z_order="0"></points>
    <points frame="6" keyframe="1" outside="1" occluded="0" points="300.50,200.25" z_order="0"></points>
  </track>
  <track id="3" label="wheel" source="manual">
    <ellipse frame="10" keyframe="1" outside="0" occluded="0" cx="50.00" cy="60.00" rx="10.00" ry="5.00" rotation="15.00" z_order="0"></ellipse>
    <ellipse frame="11" keyframe="1" outside="1" occluded="0" cx="50.00" cy="60.00" rx="10.00" ry="5.00" rotation="15.00" z_order="0"></ellipse>
  </track>
  <track id="4" label="truck" source="manual">
    <cuboid frame="0" keyframe="1" outside="0" occluded="0" {CUBOID} z_order="0"></cuboid>
    <cuboid frame="3" keyframe="1" outside="1" occluded="0" {CUBOID} z_order="0"></cuboid>
  </track>
  <track id="5" label="car" source="manual">{_car(0, 1, 1, 0, 1, "false")}</track>
</annotations>"""

FRONT_AND_BACK = {
    "front_tl": p(10, 20),
    "front_bl": p(10, 60),
    "front_tr": p(50, 20),
    "front_br": p(50, 60),
    "back_tl": p(30, 10),
    "back_bl": p(30, 50),
    "back_tr": p(70, 10),
    "back_br": p(70, 50),
}


def test_video_tracks_become_video_annotations_and_round_trip() -> None:
    [video], problems = _read(_zip_of({"annotations.xml": VIDEO}))
    assert problems == []
    assert (video.filename, video.width, video.height) == ("/street.mp4", 640, 480)
    car, road, sign, wheel, truck = video.annotations  # a track never seen gives nothing
    still = {"occluded": False, "parked": False, "color": "red"}
    hidden = {"occluded": True, "parked": True, "color": "red"}
    assert car == {
        "type": "box",
        "label": "car",
        "coordinates": box(10, 20, 110, 80),
        "metadata": {
            "system": {
                "objectId": "0",
                "frame": 0,
                "endFrame": 11,  # closed by the outside shape on 12
                "attributes": still,
                "snapshots_": [
                    # CVAT's interpolated frame 1 is kept, frame 2 (the same again) is not
                    snapshot(1, box(12, 20, 112, 80), fixed=False, **still),
                    snapshot(3, box(14.5, 20, 114.5, 80), **hidden),
                    snapshot(5, box(14.5, 20, 114.5, 80), visible=False, **hidden),
                    snapshot(8, box(20, 20, 120, 80), **{**hidden, "occluded": False}),
                ],
            }
        },
    }
    system = road["metadata"]["system"]
    assert (road["type"], road["coordinates"]) == (
        "segment",
        [[p(0, 400), p(640, 400), p(640, 480)]],
    )
    assert (system["frame"], system["endFrame"], system["snapshots_"]) == (2, 19, [])  # to the end
    system = sign["metadata"]["system"]
    assert (sign["type"], sign["coordinates"]) == ("point", p(300.5, 200.25))
    assert (system["frame"], system["endFrame"], system["objectId"]) == (4, 5, "2")
    assert wheel["coordinates"] == {"center": p(50, 60), "rx": 10, "ry": 5, "angle": 15}
    assert (wheel["metadata"]["system"]["frame"], wheel["metadata"]["system"]["endFrame"]) == (
        10,
        10,
    )
    assert (truck["type"], truck["coordinates"]) == ("cube", FRONT_AND_BACK)
    assert truck["metadata"]["system"]["endFrame"] == 2

    archive, left_out = _written([video], ["car", "road", "sign", "wheel", "truck"])
    assert sorted(archive.names()) == ["annotations.xml", "videos/street.mp4.xml"]
    [again], problems = _read(archive)
    assert (left_out, problems) == (0, [])
    assert (again.filename, again.width, again.height) == ("/street.mp4", 640, 480)
    assert again.annotations == video.annotations


SKELETON_META = """<meta><task><size>20</size><mode>interpolation</mode><labels>
  <label><name>s1</name><type>skeleton</type><attributes></attributes>
    <svg>&lt;circle r="1.5" data-type="element node" data-label-name="1"&gt;&lt;/circle&gt;</svg></label>
  <label><name>1</name><type>points</type><attributes></attributes><parent>s1</parent></label>
  <label><name>2</name><type>points</type><attributes></attributes><parent>s1</parent></label>
  <label><name>3</name><type>points</type><attributes></attributes><parent>s1</parent></label>
</labels><original_size><width>640</width><height>480</height></original_size></task>
<source>walk.mp4</source></meta>"""


def _skeleton(frame: int, keyframe: int, outside: int, parts_keyframe: int, *points: str) -> str:
    parts = "".join(
        f'<points label="{n}" outside="{outside}" occluded="0" keyframe="{parts_keyframe}" '
        f'points="{xy}"></points>'
        for n, xy in enumerate(points, start=1)
    )
    return f'<skeleton frame="{frame}" keyframe="{keyframe}" z_order="0">{parts}</skeleton>'


# the skeleton track of CVAT's description of its XML format
FIRST = ("112.07,258.59", "127.87,333.23", "195.37,223.27")
MOVED = ("120.07,270.59", "140.87,350.23", "210.37,260.27")
SKELETON_VIDEO = f"""<annotations><version>1.1</version>{SKELETON_META}
<track id="1" label="s1" source="manual">
  {_skeleton(0, 1, 0, 1, *FIRST)}
  {_skeleton(1, 1, 1, 1, *FIRST)}
  {_skeleton(6, 1, 0, 0, *MOVED)}
  {_skeleton(7, 1, 1, 1, *MOVED)}
  {_skeleton(13, 0, 0, 0, *FIRST)}
  {_skeleton(14, 1, 1, 1, *FIRST)}
</track></annotations>"""


def _point(text: str) -> dict[str, float]:
    x, y = (float(n) for n in text.split(","))
    return p(x, y)


def test_skeleton_tracks_become_a_pose_with_point_tracks_and_round_trip() -> None:
    [video], problems = _read(_zip_of({"walk.xml": SKELETON_VIDEO}))
    assert problems == []
    pose, *points = video.annotations
    assert pose["type"] == "pose" and pose["coordinates"] == {}
    system = pose["metadata"]["system"]
    assert (system["frame"], system["endFrame"], system["objectId"]) == (0, 13, "1")
    seen = [(1, False), (6, True), (7, False), (13, True)]  # hidden where every part is outside
    assert [(s["frame"], s["objectVisible"]) for s in system["snapshots_"]] == seen
    assert [s["fixed"] for s in system["snapshots_"]] == [True, True, True, False]
    assert [a["label"] for a in points] == ["1", "2", "3"]
    for n, point in enumerate(points):
        system = point["metadata"]["system"]
        assert system["parentId"] == pose["id"] and "objectId" not in system
        assert (point["type"], point["coordinates"]) == ("point", _point(FIRST[n]))
        assert (system["frame"], system["endFrame"]) == (0, 13)
        assert [
            (s["frame"], s["fixed"], s["objectVisible"], s["data"]) for s in system["snapshots_"]
        ] == [
            (1, True, False, _point(FIRST[n])),
            (6, False, True, _point(MOVED[n])),
            (7, True, False, _point(MOVED[n])),
            (13, False, True, _point(FIRST[n])),
        ]

    archive, left_out = _written([video], ["s1", "1", "2", "3"])
    [again], problems = _read(archive)
    assert (left_out, problems) == (0, [])
    assert again.annotations == video.annotations
    # a point that ends before its pose is closed by an outside keyframe of its own
    system = points[2]["metadata"]["system"]
    short = {**system, "endFrame": 6, "snapshots_": system["snapshots_"][:2]}
    shorter = [*video.annotations[:3], {**points[2], "metadata": {"system": short}}]
    archive, _ = _written([ItemAnnotations("/walk.mp4", shorter, 640, 480)], ["s1"])
    [again], problems = _read(archive)
    assert problems == [] and again.annotations == shorter


SKELETON_IMAGES = """<annotations><version>1.1</version><meta><task><labels>
  <label><name>hand</name><type>skeleton</type><attributes>
    <attribute><name>side</name><input_type>select</input_type></attribute></attributes></label>
  <label><name>thumb</name><type>points</type><attributes>
    <attribute><name>bent</name><input_type>checkbox</input_type></attribute></attributes>
    <parent>hand</parent></label>
  <label><name>index</name><type>points</type><attributes></attributes><parent>hand</parent></label>
  <label><name>pinky</name><type>points</type><attributes></attributes><parent>hand</parent></label>
</labels></task></meta>
<image id="0" name="hands/a.jpg" width="100" height="80">
  <skeleton label="hand" source="manual" z_order="0">
    <points label="thumb" source="manual" outside="0" occluded="1" points="10.50,20.00">
      <attribute name="bent">true</attribute></points>
    <points label="index" source="manual" outside="0" occluded="0" points="30.00,25.00"></points>
    <points label="pinky" source="manual" outside="1" occluded="0" points="0.00,0.00"></points>
    <attribute name="side">left</attribute>
  </skeleton>
  <skeleton label="hand" source="manual" z_order="0">
    <points label="thumb" outside="0" occluded="0" points="1,2"></points>
    <points label="ring" outside="0" occluded="0" points="3,4"></points>
  </skeleton>
  <cuboid label="crate" occluded="0" CUBOID z_order="0"></cuboid>
  <cuboid label="crate" occluded="0" CUBOID z_order="0"></cuboid>
  <cuboid label="crate" occluded="0" CUBOID z_order="0"></cuboid>
</image></annotations>"""


def test_skeletons_and_cuboids_on_images_both_ways() -> None:
    text = SKELETON_IMAGES.replace("CUBOID", CUBOID, 1)
    text = text.replace("CUBOID", CUBOID.replace('xtl1="10"', 'xtl1="ten"'), 1)
    text = text.replace("CUBOID", CUBOID.replace('ybr2="50"', 'ybr2="inf"'), 1)
    [image], problems = _read(_zip_of({"annotations.xml": text}))
    where = {p.where: p.message for p in problems}
    assert where == {
        "annotations.xml: image 0: <skeleton> 2": "part 2: label 'ring' is not a sublabel of "
        "skeleton 'hand'; its sublabels: thumb, index, pinky",
        "annotations.xml: image 0: <cuboid> 4": "xtl1 is not a number: 'ten'",
        "annotations.xml: image 0: <cuboid> 5": "ybr2 is not a finite number",
    }
    pose, thumb, index, crate = image.annotations  # the pinky is outside: not there
    assert pose == {
        "label": "hand",
        "type": "pose",
        "coordinates": {},
        "id": "skeleton:1",
        "metadata": {"system": {"attributes": {"side": "left"}}},
    }
    assert thumb == {
        "type": "point",
        "label": "thumb",
        "coordinates": p(10.5, 20),
        "metadata": {
            "system": {"parentId": "skeleton:1", "attributes": {"occluded": True, "bent": True}}
        },
    }
    assert (index["label"], index["coordinates"]) == ("index", p(30, 25))
    assert crate["type"] == "cube" and crate["coordinates"] == FRONT_AND_BACK

    turned = {**crate, "coordinates": {**FRONT_AND_BACK, "angle": 0.3}}  # CVAT cannot turn one
    archive, left_out = _written(
        [image, ItemAnnotations("/b.jpg", [turned], 100, 80)], ["crate", "hand"]
    )
    assert left_out == 1
    with archive.open("annotations.xml") as handle:
        written = handle.read().decode()
    assert "<type>skeleton</type>" in written and "<parent>hand</parent>" in written
    again, problems = _read(archive)
    assert problems == []
    assert [(i.filename, i.annotations) for i in again] == [
        ("/hands/a.jpg", image.annotations),
        ("/b.jpg", []),
    ]


def test_coco_keypoints_are_written_as_skeletons_and_read_back() -> None:
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 30, "height": 20}],
        "categories": [{"id": 1, "name": "face", "keypoints": ["nose", "eye", "ear"]}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "keypoints": [1, 1, 2, 0, 0, 0, 2, 1, 1]},
            {"id": 2, "image_id": 1, "category_id": 1, "keypoints": [5, 5, 2, 6, 6, 2, 0, 0, 0]},
        ],
    }
    [item] = [r for r in coco.read(_zip_of({"c.json": json.dumps(data)}), {}.get)]
    archive, left_out = _written([item], ["face", "nose", "eye", "ear"])
    assert left_out == 0
    [again], problems = _read(archive)
    assert problems == []

    def poses(annotations: list[dict[str, Any]]) -> list[tuple[str, list[tuple[Any, ...]]]]:
        found = []
        for pose in (a for a in annotations if a["type"] == "pose"):
            points = [
                (a["label"], a["coordinates"], a["metadata"]["system"]["attributes"]["visibility"])
                for a in annotations
                if a.get("metadata", {}).get("system", {}).get("parentId") == pose["id"]
            ]
            found.append((pose["label"], points))
        return found

    # each skeleton has the parts seen so far; one the pose lacks is outside, so not read
    assert (
        poses(again.annotations)
        == poses(item.annotations)
        == [
            ("face", [("nose", p(1, 1), 2), ("ear", p(2, 1), 1)]),
            ("face", [("nose", p(5, 5), 2), ("eye", p(6, 6), 2)]),
        ]
    )


SEQUENCE = """<annotations><version>1.1</version><meta><task><labels>
  <label><name>car</name><attributes>
    <attribute><name>speed</name><input_type>number</input_type></attribute></attributes></label>
</labels></task></meta>
<image id="0" name="seq/000.jpg" width="50" height="40"></image>
<image id="1" name="seq/001.jpg" width="50" height="40"><tag label="day"></tag></image>
<image id="2" name="seq/002.jpg" width="50" height="40"></image>
<image id="3" name="seq/003.jpg" width="50" height="40"></image>
<track id="7" label="car" source="manual">
  <box frame="1" keyframe="1" outside="0" occluded="0" xtl="1" ytl="2" xbr="11" ybr="12" z_order="0">
    <attribute name="speed">3</attribute></box>
  <box frame="3" keyframe="1" outside="1" occluded="0" xtl="1" ytl="2" xbr="11" ybr="12" z_order="0">
    <attribute name="speed">3</attribute></box>
</track>
<track id="9" label="sky" source="manual">
  <mask frame="3" keyframe="1" outside="0" occluded="0" rle="1,3" left="1" top="1" width="2"
    height="2" z_order="0"></mask>
</track>
<track id="8" label="car" source="manual">
  <box frame="0" keyframe="1" outside="0" occluded="0" xtl="1" ytl="2" xbr="11" ybr="12"></box>
  <box frame="9" keyframe="1" outside="1" occluded="0" xtl="1" ytl="2" xbr="11" ybr="12"></box>
</track>
</annotations>"""


def test_tracks_of_an_image_task_go_to_the_images_their_frames_are() -> None:
    images, problems = _read(_zip_of({"a.xml": SEQUENCE}))
    assert [(p.where, p.message) for p in problems] == [
        ("a.xml: track 8", "<box> 2: frame 9 has no image (the file's images are frames 0 to 3)")
    ]
    car = {
        "type": "box",
        "label": "car",
        "coordinates": box(1, 2, 11, 12),
        "metadata": {"system": {"objectId": "7", "attributes": {"occluded": False, "speed": 3}}},
    }
    day = {"label": "day", "type": "class", "coordinates": []}
    *listed, (last, [sky]) = [(i.filename, i.annotations) for i in images]
    assert listed == [
        ("/seq/000.jpg", []),
        ("/seq/001.jpg", [day, car]),
        ("/seq/002.jpg", [car]),  # the last shape before it
    ]
    assert last == "/seq/003.jpg"  # where the car is outside
    # a mask the size of its image: 3 of the 2 x 2 pixels at (1, 1)
    alpha = Image.open(io.BytesIO(base64.b64decode(sky["coordinates"].split(",")[1])))
    assert (alpha.size, sky["type"], sky["metadata"]["system"]["objectId"]) == (
        (50, 40),
        "binary",
        "9",
    )
    assert sum(map(bool, alpha.convert("RGBA").getchannel("A").tobytes())) == 3
    # CVAT for video of an image task names no image: the archive's, in lexical order
    video = (
        SEQUENCE.split('<image id="0"')[0]
        + SEQUENCE.split("</image>")[-1].split('<track id="8"')[0]
    )
    files = _zip_of(
        {
            "annotations.xml": video + "</annotations>",
            "images/b.jpg": "",
            "images/a.jpg": "",
            "images/c.jpg": "",
            "images/d.jpg": "",
        }
    )
    images, problems = _read(files, {"/b.jpg": (50, 40), "/d.jpg": (50, 40)})
    assert problems == []
    assert [(i.filename, i.width, len(i.annotations)) for i in images] == [
        ("/a.jpg", None, 0),
        ("/b.jpg", 50, 1),
        ("/c.jpg", None, 1),
        ("/d.jpg", 50, 1),  # the mask, the size the platform says the image is
    ]


def _track(body: str, track_id: str = "0", label: str = "car") -> str:
    return f'<track id="{track_id}" label="{label}" source="manual">{body}</track>'


def test_bad_tracks_are_reported_and_the_rest_read() -> None:
    good = '<box frame="1" keyframe="1" outside="0" occluded="0" xtl="1" ytl="2" xbr="3" ybr="4"/>'
    beyond = good.replace('frame="1"', 'frame="20"')
    two = '<points frame="0" outside="0" occluded="0" points="1,1;2,2"/>'
    hand = (
        '<skeleton frame="0" keyframe="1"><points label="1" outside="0" occluded="0" points="1,1"/>'
        '<points label="tail" outside="0" occluded="0" points="2,2"/></skeleton>'
    )
    tracks = "".join(
        [
            _track(good + beyond, "0"),
            _track(two, "1", "sign"),
            _track(good + good, "2"),
            _track(good.replace('frame="1"', 'frame="x"'), "3"),
            _track(good.replace('xtl="1"', 'xtl="one"'), "4"),
            _track(hand, "5", "s1"),
            '<track id="6">' + good + "</track>",
            _track(good, "7"),
        ]
    )
    text = f"<annotations>{SKELETON_META}{tracks}</annotations>"
    nowhere = (
        "<annotations><meta><task><size>3</size></task></meta>" + _track(good) + "</annotations>"
    )
    [video], problems = _read(_zip_of({"a.xml": text, "b.xml": nowhere}))
    assert {p.where: p.message for p in problems} == {
        "a.xml: track 0": "<box> 2: frame 20 is beyond the video's last frame 19",
        "a.xml: track 1": "<points> 1: holds 2 points where one is read (a Dataloop point is one)",
        "a.xml: track 2": "frame 1 has two shapes",
        "a.xml: track 3": "<box> 1: frame is not a whole number: 'x'",
        "a.xml: track 4": "<box> 1: xtl is not a number: 'one'",
        "a.xml: track 5": "<skeleton> 1: part 2: label 'tail' is not a sublabel of skeleton 's1'; "
        "its sublabels: 1, 2, 3",
        "a.xml: track 6": "label is missing",
        "b.xml": "the tracks' frames are nowhere: a video task names its video in "
        "<source>, an image task lists its <image>s or keeps them in images/",
    }
    [car] = video.annotations
    assert car["metadata"]["system"]["objectId"] == "7"


def test_a_real_dataloop_video_export_is_written_as_tracks_and_read_back() -> None:
    root = shared_data() / "dataloop-json" / "yolo" / "dataloop" / "json"
    [given] = [
        r
        for r in dataloop.read(FolderFiles(root), lambda _: None)
        if isinstance(r, ItemAnnotations) and r.filename.endswith(".webm")
    ]
    archive, left_out = _written([given], ["person"])
    assert left_out == 0
    with archive.open("videos/2021_04_23_10_39_21_Cache_Trim_Cropped.webm.xml") as handle:
        written = handle.read().decode()
    assert "<size>125</size>" in written  # the video's frames, from its metadata
    assert "<original_size><width>1280</width><height>720</height></original_size>" in written
    [again], problems = _read(archive)
    assert problems == [] and again.filename == given.filename

    def track(annotation: dict[str, Any]) -> tuple[Any, ...]:
        system = annotation["metadata"]["system"]
        flat = [{"x": c["x"], "y": c["y"]} for c in annotation["coordinates"]]  # no z in CVAT
        snapshots = [
            (
                s["frame"],
                s["fixed"],
                s["label"],
                s["type"],
                s["objectVisible"],
                [{"x": c["x"], "y": c["y"]} for c in s["data"]],
            )
            for s in system["snapshots_"]
        ]
        kept = (system["frame"], system["endFrame"], system["objectId"])
        return annotation["type"], annotation["label"], flat, kept, snapshots

    by_object = {a["metadata"]["system"]["objectId"]: track(a) for a in again.annotations}
    assert by_object == {a["metadata"]["system"]["objectId"]: track(a) for a in given.annotations}
    assert all(len(a["metadata"]["system"]["snapshots_"]) == 50 for a in again.annotations)


def test_a_video_segment_of_several_rings_is_a_track_per_ring() -> None:
    outer, hole = [p(0, 0), p(8, 0), p(8, 8)], [p(2, 2), p(4, 2), p(4, 4)]
    moved = [p(1, 0), p(9, 0), p(9, 8)]
    keyframe = {"frame": 2, "fixed": True, "type": "segment", "data": [moved]}
    video = ItemAnnotations(
        "/v.mp4",
        [
            {
                "type": "segment",
                "label": "road",
                "coordinates": [outer, hole],
                "metadata": {
                    "system": {"frame": 0, "endFrame": 3, "objectId": "5", "snapshots_": [keyframe]}
                },
            }
        ],
        10,
        10,
    )
    archive, left_out = _written([video], ["road"])
    assert left_out == 0
    text = archive.open("videos/v.mp4.xml").read().decode()
    assert text.count("<track ") == 2 and 'track id="5"' in text
    [again], problems = _read(archive)
    assert problems == []
    whole, inner = again.annotations
    assert whole["coordinates"] == [outer]
    assert whole["metadata"]["system"]["objectId"] == "5"
    assert [(s["frame"], s["data"]) for s in whole["metadata"]["system"]["snapshots_"]] == [
        (2, [moved])
    ]
    assert inner["coordinates"] == [hole]
    # the hole is gone from frame 2: its track is outside there
    system = inner["metadata"]["system"]
    assert (system["frame"], system["endFrame"], system["snapshots_"]) == (0, 1, [])


def _box(frame: int, x: float, keyframe: int = 1, outside: int = 0) -> str:
    return (
        f'<box frame="{frame}" keyframe="{keyframe}" outside="{outside}" occluded="0" '
        f'xtl="{x}" ytl="2" xbr="{x + 2}" ybr="4" z_order="0"></box>'
    )


CAR = "<labels><label><name>car</name><type>rectangle</type><attributes/></label></labels>"


def _stepped(*tracks: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version><meta><task>'
        "<id>2</id><name>clip</name><size>5</size><mode>interpolation</mode><overlap>0</overlap>"
        "<start_frame>10</start_frame><stop_frame>30</stop_frame>"
        f"<frame_filter>step=5</frame_filter>{CAR}"
        "<original_size><width>640</width><height>480</height></original_size></task>"
        f"<source>clip.mp4</source></meta>{''.join(tracks)}</annotations>"
    )


def test_a_task_from_a_start_frame_every_n_frames_maps_to_the_video_frames() -> None:
    """A task of a video from frame 10 every 5th frame (``frame_filter`` ``step=5``, 5 frames):
    CVAT numbers its frames 10, 15 ... 30, the video's frames; other numbers are refused."""
    text = _stepped(
        _track(_box(10, 1) + _box(15, 2, keyframe=0) + _box(20, 3) + _box(25, 3, outside=1), "0"),
        _track(_box(25, 7), "1"),  # runs to the task's last frame
        _track(_box(12, 1), "2"),
        _track(_box(5, 1), "3"),
        _track(_box(35, 1), "4"),
    )
    [video], problems = _read(_zip_of({"annotations.xml": text}))
    assert {p.where: p.message for p in problems} == {
        "annotations.xml: track 2": "<box> 1: frame 12 is not one of the task's frames "
        "(from 10 every 5)",
        "annotations.xml: track 3": "<box> 1: frame 5 is not one of the task's frames "
        "(from 10 every 5)",
        "annotations.xml: track 4": "<box> 1: frame 35 is beyond the video's last frame 30",
    }
    moving, parked = (a["metadata"]["system"] for a in video.annotations)
    assert (moving["frame"], moving["endFrame"]) == (10, 24)  # closed on 25
    assert [(s["frame"], s["fixed"], s["data"]) for s in moving["snapshots_"]] == [
        (15, False, box(2, 2, 4, 4)),
        (20, True, box(3, 2, 5, 4)),
    ]
    assert (parked["frame"], parked["endFrame"], parked["snapshots_"]) == (25, 30, [])

    # an image task's tracks on the archive's images: its i-th image is frame 2 + 2i
    image_task = (
        "<annotations><meta><task><size>3</size><mode>annotation</mode>"
        "<start_frame>2</start_frame><frame_filter>step=2</frame_filter>"
        f"{CAR}</task></meta>{_track(_box(4, 1) + _box(6, 1, outside=1))}</annotations>"
    )
    files = {
        "annotations.xml": image_task,
        "images/a.jpg": "",
        "images/b.jpg": "",
        "images/c.jpg": "",
    }
    images, problems = _read(_zip_of(files))
    assert problems == []
    assert [(i.filename, len(i.annotations)) for i in images] == [
        ("/a.jpg", 0),
        ("/b.jpg", 1),
        ("/c.jpg", 0),
    ]


def _task(
    task_id: int, subset: str, size: int, start: int = 0, step: int = 1, video: str = ""
) -> str:
    source = (
        f"<original_size><width>64</width><height>48</height></original_size><source>{video}</source>"
        if video
        else ""
    )
    stop = start + (size - 1) * step
    return (
        f"<task><id>{task_id}</id><name>t{task_id}</name><size>{size}</size>"
        f"<mode>{'interpolation' if video else 'annotation'}</mode><overlap>0</overlap>"
        "<bugtracker></bugtracker><created>2024-05-01 10:00:00+00:00</created>"
        f"<updated>2024-05-01 10:00:00+00:00</updated><subset>{subset}</subset>"
        f"<start_frame>{start}</start_frame><stop_frame>{stop}</stop_frame>"
        f"<frame_filter>{f'step={step}' if step > 1 else ''}</frame_filter>"
        f"<segments><segment><id>{task_id}</id><start>0</start><stop>{size - 1}</stop>"
        f"<url>http://cvat.test/api/jobs/{task_id}</url></segment></segments>"
        f"<owner><username>ann</username><email>ann@x.test</email></owner><assignee></assignee>"
        f"{source}</task>"
    )


def _project(*body: str) -> str:
    """A CVAT for video 1.1 project export as CVAT writes it: the project's labels and tasks
    in <meta><project>, tracks with task_id and subset. Tasks 3 and 4 are videos of subset
    Train (4 from frame 100 every 2nd; numbered after task 3's 20 frames), 5 an image task."""
    tasks = (
        _task(3, "Train", 20, video="day.mp4")
        + _task(4, "Train", 10, start=100, step=2, video="night.mp4")
        + _task(5, "Test", 2)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version><meta><project>'
        "<id>1</id><name>streets</name><bugtracker></bugtracker>"
        "<created>2024-05-01 10:00:00+00:00</created><updated>2024-05-01 10:00:00+00:00</updated>"
        f"<tasks>{tasks}</tasks><subsets>Train\nTest</subsets>"
        f"<owner><username>ann</username><email>ann@x.test</email></owner><assignee></assignee>"
        f"{CAR}</project><dumped>2024-05-02 10:00:00+00:00</dumped></meta>{''.join(body)}"
        "</annotations>"
    )


def _project_track(track_id: int, task_id: int, subset: str, body: str) -> str:
    return (
        f'<track id="{track_id}" label="car" source="manual" task_id="{task_id}" '
        f'subset="{subset}">{body}</track>'
    )


def test_a_project_export_maps_each_tasks_frames_to_its_video_or_images() -> None:
    def read(night: str) -> tuple[dict[str, ItemAnnotations], list[Problem]]:
        text = _project(
            _project_track(0, 3, "Train", _box(0, 1) + _box(5, 1, outside=1)),
            _project_track(1, 4, "Train", night),
            _project_track(2, 5, "Test", _box(1, 5)),
            _project_track(3, 9, "Test", _box(0, 5)),
        )
        files = {"annotations.xml": text, "images/Test/p1.jpg": "", "images/Test/p2.jpg": ""}
        items, problems = _read(_zip_of(files))
        return {i.filename: i for i in items}, problems

    # CVAT numbers task 4's frames after task 3's 20: frame 120 is its first, video frame 100
    items, problems = read(_box(120, 1) + _box(124, 3) + _box(126, 3, outside=1))
    assert [(p.where, p.message) for p in problems] == [
        ("annotations.xml: track 3", "task_id '9' is not one of the project's <tasks>")
    ]
    assert sorted(items) == ["/Test/p1.jpg", "/Test/p2.jpg", "/day.mp4", "/night.mp4"]
    [day] = items["/day.mp4"].annotations
    assert (day["metadata"]["system"]["frame"], day["metadata"]["system"]["endFrame"]) == (0, 4)
    assert (items["/day.mp4"].width, items["/day.mp4"].height) == (64, 48)
    [night] = items["/night.mp4"].annotations
    system = night["metadata"]["system"]
    assert (system["frame"], system["endFrame"]) == (100, 105)
    assert [(s["frame"], s["data"]) for s in system["snapshots_"]] == [(104, box(3, 2, 5, 4))]
    assert items["/Test/p1.jpg"].annotations == []
    assert [a["coordinates"] for a in items["/Test/p2.jpg"].annotations] == [box(5, 2, 7, 4)]

    # an older CVAT numbered each task's frames by its own: read the same
    again, problems = read(_box(100, 1) + _box(104, 3) + _box(106, 3, outside=1))
    assert len(problems) == 1
    assert again["/night.mp4"].annotations == items["/night.mp4"].annotations
    # a frame that is none of the task's
    bad, problems = read(_box(101, 1))
    assert (
        "annotations.xml: track 1",
        "<box> 1: frame 101 is not one of the task's frames (from 120 every 2)",
    ) in [(p.where, p.message) for p in problems]
    assert bad["/night.mp4"].annotations == []


def test_a_project_export_of_images_maps_each_tasks_frames() -> None:
    """CVAT for images of a project: each task's images carry task_id and subset; an image
    task's are items below images/<subset>/, a video task's frames go to its video (a shape on
    that frame alone), numbered as its tracks would be."""
    images = "".join(
        f'<image id="{frame}" name="{image}" subset="{subset}" task_id="{task}" width="64" '
        f'height="48"><box label="car" occluded="0" xtl="{x}" ytl="1" xbr="{x + 1}" ybr="2" '
        'z_order="0"/></image>'
        for task, frame, image, subset, x in (
            (5, 0, "a.jpg", "Test", 1),
            (3, 0, "frame_000000", "Train", 2),
            (4, 122, "frame_000122", "Train", 3),
            (4, 121, "frame_000121", "Train", 4),
        )
    )
    items, problems = _read(_zip_of({"annotations.xml": _project(images)}))
    assert [(p.where, p.message) for p in problems] == [
        (
            "annotations.xml: image 121",
            "frame 121 is not one of the task's frames (from 120 every 2)",
        )
    ]
    found = {
        i.filename: [
            (a["coordinates"][0]["x"], a.get("metadata", {}).get("system", {}).get("frame"))
            for a in i.annotations
        ]
        for i in items
    }
    assert found == {"/Test/a.jpg": [(1, None)], "/day.mp4": [(2, 0)], "/night.mp4": [(3, 102)]}
    [night] = next(i for i in items if i.filename == "/night.mp4").annotations
    assert night["metadata"]["system"]["endFrame"] == 102
