"""`qia plan`: context-aware planning only; prints the plan."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from qia_cli.cli import common, console
from qia_cli.cli.root import app


@app.command("plan")
def plan_command(
    prompt: common.PromptArg = None,
    json_out: common.JsonOpt = False,
    llm: common.LlmOpt = None,
    search: common.SearchOpt = None,
    no_ask: common.NoAskOpt = False,
    answer: common.AnswerOpt = None,
    answers: common.AnswersOpt = None,
    remember: common.RememberOpt = None,
    no_memory: common.NoMemoryOpt = False,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="For each gap, the model calls that tried to fill it and why each answer was used or withheld.",
        ),
    ] = False,
    no_log: common.NoLogOpt = False,
) -> None:
    """Plan a request: find what is missing, fill it, and print the final prompt (alone with -q).

    Examples:

      qia plan "a poster for my dog's birthday"

      qia plan "the new headquarters" --no-ask --json

      echo "a bear in winter" | qia plan --json

      qia plan "the national flower of Japan in a blue vase" --explain
    """
    flags = common.PlanFlags(
        prompt, json_out, llm, search, no_ask, answer or [], answers, remember, no_memory, no_log=no_log
    )
    request = common.read_prompt(prompt)
    agent = common.build_agent(flags, progress=None if json_out else common.progress_printer())
    plan = agent.plan(request, common.plan_options(flags, agent))
    common.note_unused_answers(plan, flags)
    common.learn_from_answers(plan, flags, agent)
    agent.record_session(plan, [], "plan")
    if json_out and explain:  # the plan's document, with its calls
        doc = plan.model_dump(mode="json")
        doc["calls"] = [c.as_dict() for c in agent.last_calls]
        common.print_data(doc)
    elif json_out:
        common.print_json(plan)
    elif console.state.quiet:  # -q: the final prompt alone, one line for scripts that don't want JSON
        from qia_cli.textsafe import printable

        sys.stdout.write(printable(plan.prompt) + "\n")
    else:
        common.print_plan(plan)
        if explain:
            from qia_cli.cli.callview import print_explain

            print_explain(plan, agent.last_calls)
