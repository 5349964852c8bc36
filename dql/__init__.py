"""DQL, the Loopline query language: text and Dataloop JSON filters compiled to SQL.

Imports nothing else of Loopline's; callers supply the field map of the resource they query.
"""
