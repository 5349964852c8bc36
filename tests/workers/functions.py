"""A plugin shipping the functions the execution tests run (registered with LOOPLINE_PLUGINS)."""

from __future__ import annotations

import dataclasses
import signal
import time
from typing import Any

from plugins import hookimpl
from plugins.functions import (
    DisplayScope,
    FunctionIO,
    FunctionSpec,
    ModuleSpec,
    PackageSpec,
    UISlot,
)

PACKAGE = "test-functions"


class Runner:
    def __init__(self, greeting: str = "hello") -> None:
        self.greeting = greeting
        self.calls = 0

    def noop(self) -> None:
        return None

    def greet(self, name: str) -> str:
        self.calls += 1
        return f"{self.greeting} {name} ({self.calls})"

    def label(self, item: Any, label: str = "cat", progress: Any = None) -> dict[str, Any]:
        """Adds one box annotation; a retry must not add it twice."""
        added = item.add_annotation("box", label, coordinates=[{"x": 1, "y": 1}, {"x": 5, "y": 5}])
        item.update_metadata({"labelled": True})
        if progress is not None:
            progress.update(progress=100, message="labelled", action="done")
        return {"annotation": added.id}

    def fail(self, message: str = "boom") -> None:
        raise ValueError(message)

    def sleep(self, seconds: float, context: Any = None) -> str:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if context is not None and context.terminated:
                return "stopped early"
            time.sleep(0.05)
        return "slept"

    def stubborn(self, seconds: float) -> None:
        """Cannot be stopped while it runs: it blocks the signal a worker interrupts with, as
        code stuck in a C extension would (catching the interrupt would leave moments between
        Python instructions where it gets through)."""
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        try:
            time.sleep(seconds)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def chatty(self, lines: int, context: Any = None) -> int:
        for n in range(lines):
            print(f"line {n} " + "x" * 100)
        if context is not None:
            context.logger.info("done printing")
        return lines

    def on_item(self, item: Any) -> str:
        return item.filename


def _fn(
    name: str, inputs: tuple[FunctionIO, ...] = (), outputs: tuple[FunctionIO, ...] = ()
) -> FunctionSpec:
    return FunctionSpec(name=name, inputs=inputs, outputs=outputs)


SPEC = PackageSpec(
    name=PACKAGE,
    modules=(
        ModuleSpec(
            name="main",
            runner=Runner,
            init_inputs=(FunctionIO("greeting", "String", mandatory=False),),
            functions=(
                _fn("noop"),
                _fn("greet", (FunctionIO("name", "String"),)),
                _fn(
                    "label",
                    (FunctionIO("item", "Item"), FunctionIO("label", "String", mandatory=False)),
                    (FunctionIO("result", "Json", actions=("done", "skipped")),),
                ),
                _fn("fail", (FunctionIO("message", "String", mandatory=False),)),
                _fn("sleep", (FunctionIO("seconds", "Number"),)),
                _fn("stubborn", (FunctionIO("seconds", "Number"),)),
                _fn("chatty", (FunctionIO("lines", "Integer"),)),
                _fn("on_item", (FunctionIO("item", "Item"),)),
            ),
        ),
    ),
)


SPEC = dataclasses.replace(
    SPEC,
    slots=(
        UISlot(
            "Label it",
            "main",
            "label",
            (DisplayScope("item", "", "studio"),),
            post_action="drawAnnotation",
            default_inputs={"label": "from-slot"},
        ),
    ),
)


@hookimpl
def register_functions() -> list[PackageSpec]:
    return [SPEC]


@hookimpl
def register_ui_slots() -> list[UISlot]:
    """A slot a plugin adds to the package: only on training items."""
    return [
        UISlot(
            "Show its name",
            "main",
            "on_item",
            (DisplayScope("item", 'dir = "/train"', "browser"),),
            package=PACKAGE,
        )
    ]
