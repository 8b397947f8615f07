"""The agent: planning, grounding, composing, rendering and feedback. It never imports Typer or Rich."""
