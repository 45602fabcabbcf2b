"""Run one message through a conversation's flow: commands, input, actions, prompts.

Pure with respect to storage: it changes the `Session` it is given and returns replies; the
engine loads and saves. Actions are the only I/O, through the services they are handed.
Every input gets an answer (the next prompt, or a reason and the same prompt again); nothing a
person sends can raise out of here.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import structlog

from bot.i18n import Catalogs
from bot.incident import is_reference
from bot.session import Session
from bot.types import Ask, Choice, Inbound, Kind, Reply, Text
from flows.actions import ActionContext, ActionRegistry
from flows.compiler import CompiledFlow, FlowModel
from flows.inputs import Accepted, InputContext, InputRegistry
from flows.model import CHOICES_DONE, COMMANDS, Step

log = structlog.get_logger(__name__)

# A flow whose say/run steps loop without asking would spin forever; stop it.
MAX_STEPS_PER_MESSAGE = 50
SILENT_FLOW = "silent"
REPORT_FLOW = "report"
RELAY_ACTION = "relay_message"  # bot.reports: passes text to the report's responders
# The core actions behind "my reports" and a typed reference (bot/my_reports.py).
MINE_ACTION = "my_reports"
STATUS_ACTION = "report_status"
# One run of a flow, fixed when it starts and kept in the session, so it is the same when the
# summary is shown and when "send" is tapped again after a crash: an action that must happen
# once per run (submitting a report) is idempotent on it, not on the event that ran it.
RUN_ID = "run_id"


class FlowRunner:
    """Steps sessions through compiled flows."""

    def __init__(self, flows: Mapping[str, CompiledFlow], inputs: InputRegistry,
                 actions: ActionRegistry, catalogs: Catalogs, input_context: InputContext):
        self.flows = flows
        self.inputs = inputs
        self.actions = actions
        self.catalogs = catalogs
        self.input_context = input_context

    # -- entry points ---------------------------------------------------------------------

    async def start(self, session: Session, flow_name: str, inbound: Inbound,
                    services: Any, prefix: list[Reply] | None = None) -> list[Reply]:
        """Begin `flow_name` from its first step."""
        compiled = self.flows[flow_name]
        session.flow = flow_name
        session.state = compiled.flow.start
        session.slots = {RUN_ID: uuid.uuid4().hex}
        session.history = []
        session.pending = None
        session.silent = session.silent or compiled.flow.silent
        replies = list(prefix or [])
        replies += await self._enter(session, inbound, services)
        return replies

    def resume(self, session: Session) -> list[Reply]:
        """The current step's prompt again, for someone coming back to the conversation."""
        return [self._prompt(session, self._step(session))]

    async def handle(self, session: Session, inbound: Inbound, services: Any) -> list[Reply]:
        """One message for a session that is in a flow."""
        assert session.flow is not None and session.state is not None
        if isinstance(inbound.payload, str) and inbound.payload.startswith("lang:"):
            return self._set_language(session, inbound.payload[5:])
        if session.pending == "language":
            picked = self._pick_language(inbound)
            if picked:
                return self._set_language(session, picked)
            session.pending = None
        step = self._step(session)
        if is_reference(inbound) and STATUS_ACTION in self.actions.names():
            # A reference alone is a status question, in every flow and step (a silent
            # reporter's only way to ask): never an answer, never relayed.
            return [*await self._inquire(session, STATUS_ACTION, inbound, services),
                    self._prompt(session, step)]
        if self._skips(session, step, inbound):
            return await self._skip(session, step, inbound, services)
        command = self._command(session, step, inbound)
        if command:
            return await self._run_command(session, command, inbound, services)
        if self._is_command_word(inbound):
            # A command not offered at this step must never be taken as an answer (the word
            # "restart" is not an address).
            return [self._say(session, Text("common.command_unavailable")),
                    self._prompt(session, step)]
        if inbound.kind is Kind.MEDIA and step.photos:
            # A step that keeps photos (documents): the action keeps or refuses this one,
            # and the step stays, for more photos or its own answer.
            _, answered = await self._run_named(session, step.photos, inbound, services)
            return [*answered, self._prompt(session, step)]
        media = self._compiled(session).flow.media
        if inbound.kind is Kind.MEDIA and media:
            return [self._say(session, Text(media)), self._prompt(session, step)]
        outcome = self.inputs.parse(inbound, step, self.input_context)
        if not isinstance(outcome, Accepted) and self._relays(session, step, inbound):
            return await self._relay(session, step, inbound, services)
        if not isinstance(outcome, Accepted):
            return [self._say(session, Text(outcome.reason, outcome.params)),
                    self._prompt(session, step)]
        assert step.save is not None
        if step.expect == "choices":
            again = self._pick(session, step, outcome.value)
            if again is not None:
                return again
        else:
            session.slots[step.save] = outcome.value
        session.history.append(step.name)
        said: list[Reply] = []
        if step.run:
            said = await self._run_action(session, step, inbound, services)
        return said + await self._advance(session, inbound, services)

    async def inquire(self, session: Session, inbound: Inbound,
                      services: Any) -> list[Reply] | None:
        """For a conversation in no flow: answer "my reports" or a typed reference without
        starting a report; None when the message is neither."""
        if is_reference(inbound) and STATUS_ACTION in self.actions.names():
            return await self._inquire(session, STATUS_ACTION, inbound, services)
        wanted = (inbound.kind is Kind.CHOICE and inbound.text == "cmd:mine") or (
            inbound.kind is Kind.TEXT and self._typed(inbound)
            in self.catalogs.words("commands.mine.words"))
        if wanted and MINE_ACTION in self.actions.names():
            return await self._inquire(session, MINE_ACTION, inbound, services)
        return None

    async def _inquire(self, session: Session, action: str, inbound: Inbound,
                       services: Any) -> list[Reply]:
        result = await self.actions.get(action)(ActionContext(session, inbound, services))
        return [self._say(session, text) for text in result.say]

    # -- after the receipt: what the reporter writes goes to the responders ----------------

    def _relays(self, session: Session, step: Step, inbound: Inbound) -> bool:
        """Free text at a tap-only step of a submitted report is a message for the
        responders ("he is coming back"), not a wrong answer."""
        return (inbound.kind is Kind.TEXT and bool(inbound.text.strip())
                and step.expect == "choice" and bool(session.slots.get("reference"))
                and RELAY_ACTION in self.actions.names())

    async def _relay(self, session: Session, step: Step, inbound: Inbound,
                     services: Any) -> list[Reply]:
        session.slots["message"] = inbound.text
        try:
            result = await self.actions.get(RELAY_ACTION)(ActionContext(session, inbound,
                                                                        services))
        finally:
            session.slots.pop("message", None)  # relayed, never kept in the answers
        flow = SILENT_FLOW if session.silent else "report"
        key = f"{flow}.waiting.{'relayed' if result.outcome == 'sent' else 'relay_failed'}"
        log.info("flow.relayed_from_step", state=session.state, outcome=result.outcome)
        return [self._say(session, Text(key)), self._prompt(session, step)]

    def _pick(self, session: Session, step: Step, answer: list[str]) -> list[Reply] | None:
        """A step that takes several choices: a tap toggles one, typed numbers replace the
        list; the step is asked again until `done` (or every choice is picked)."""
        assert step.save is not None
        picked = [v for v in session.slots.get(step.save) or [] if v != CHOICES_DONE]
        chosen = [v for v in answer if v != CHOICES_DONE]
        if len(answer) > 1:
            picked = chosen
        elif chosen and chosen[0] in picked:
            picked.remove(chosen[0])
        else:
            picked += chosen
        session.slots[step.save] = picked
        if CHOICES_DONE in answer and not picked:
            return [self._say(session, Text("common.invalid.none_picked")),
                    self._prompt(session, step)]
        everything = sum(1 for c in step.choices if c.value not in (None, CHOICES_DONE))
        if CHOICES_DONE in answer or len(answer) > 1 or len(picked) >= everything:
            return None
        return [self._prompt(session, step)]

    # -- groups and optional sections -----------------------------------------------------

    def _skips(self, session: Session, step: Step, inbound: Inbound) -> bool:
        section = self._compiled(session).flow.section_starting(step.name)
        if section is None or not isinstance(inbound.payload, str):
            return False
        if inbound.kind is Kind.CHOICE:
            return inbound.payload == section.payload
        if inbound.kind is not Kind.TEXT:
            return False
        typed = self._typed(inbound)
        # The skip button is shown after the step's own choices, so it has the next number.
        if typed == str(len(step.choices) + 1):
            return True
        return typed in {self.catalogs.render(lang.code, Text(section.skip)).casefold()
                         for lang in self.catalogs.languages}

    async def _skip(self, session: Session, step: Step, inbound: Inbound,
                    services: Any) -> list[Reply]:
        flow = self._compiled(session).flow
        section = flow.section_starting(step.name)
        assert section is not None
        for name in section.steps:
            saved = flow.step(name).save
            if saved:
                session.slots.pop(saved, None)
        session.history.append(step.name)
        session.state = section.after
        log.info("flow.section_skipped", flow=session.flow, section=section.name)
        return await self._enter(session, inbound, services)

    def _collect(self, session: Session, step: Step) -> None:
        """Close the group's current item: its answers become one entry of the list."""
        flow = self._compiled(session).flow
        group = flow.groups[str(step.collect)]
        items = list(session.slots.get(group.name) or [])
        item: dict[str, Any] = {}
        for name in group.steps:
            saved = flow.step(name).save
            if saved and saved in session.slots:
                item[saved] = session.slots.pop(saved)
        if item and len(items) < group.max:
            items.append(item)
        session.slots[group.name] = items
        session.slots[group.count_slot] = len(items)
        session.slots[group.full_slot] = "yes" if len(items) >= group.max else "no"

    def _over_limit(self, session: Session, step: Step) -> Reply | None:
        """At a group's first step with the group full: go past it, saying why."""
        group = self._compiled(session).flow.group_starting(step.name)
        if group is None or len(session.slots.get(group.name) or []) < group.max:
            return None
        session.state = group.after
        return self._say(session, Text(group.full, {"max": group.max}))

    # -- stepping -------------------------------------------------------------------------

    def _compiled(self, session: Session) -> CompiledFlow:
        assert session.flow is not None
        return self.flows[session.flow]

    def _step(self, session: Session) -> Step:
        assert session.state is not None
        return self._compiled(session).flow.step(session.state)

    async def _advance(self, session: Session, inbound: Inbound, services: Any) -> list[Reply]:
        compiled = self._compiled(session)
        model = FlowModel(state=str(session.state), slots=session.slots)
        session.state = compiled.advance(model)
        return await self._enter(session, inbound, services)

    async def _enter(self, session: Session, inbound: Inbound, services: Any) -> list[Reply]:
        """Say and run steps from the current one until one asks, or the flow ends."""
        replies: list[Reply] = []
        for _ in range(MAX_STEPS_PER_MESSAGE):
            step = self._step(session)
            full = self._over_limit(session, step)
            if full is not None:
                replies.append(full)
                continue
            if step.collect:
                self._collect(session, step)
            if step.asks:
                replies.append(self._prompt(session, step))
                return replies
            if step.run:
                replies += await self._run_action(session, step, inbound, services)
                # No going back across an action: what it did (a submitted report) stays done.
                session.history = []
            if step.say:
                replies.append(self._say(session, Text(step.say, self._params(session))))
            if step.end:
                session.end()
                return replies
            model = FlowModel(state=step.name, slots=session.slots)
            session.state = self._compiled(session).advance(model)
        log.error("flow.loop", flow=session.flow, state=session.state)
        session.end()
        return [*replies, self._say(session, Text("common.error"))]

    async def _run_action(self, session: Session, step: Step, inbound: Inbound,
                          services: Any) -> list[Reply]:
        assert step.run is not None
        outcome, said = await self._run_named(session, step.run, inbound, services)
        if step.save and not step.asks:
            session.slots[step.save] = outcome
        return said

    async def _run_named(self, session: Session, action: str, inbound: Inbound,
                         services: Any) -> tuple[str, list[Reply]]:
        """Run `action`, merge its slots; its outcome and what it says."""
        result = await self.actions.get(action)(ActionContext(session, inbound, services))
        session.slots.update(result.slots)
        return result.outcome, [self._say(session, text) for text in result.say]

    # -- commands -------------------------------------------------------------------------

    def _command(self, session: Session, step: Step, inbound: Inbound) -> str | None:
        allowed = step.commands
        if allowed is None:
            allowed = self._compiled(session).flow.commands
        if not allowed or not isinstance(inbound.payload, str):
            return None
        if inbound.kind is Kind.CHOICE and inbound.payload.startswith("cmd:"):
            name = inbound.payload[4:]
            return name if name in allowed else None
        if inbound.kind is Kind.TEXT:
            typed = self._typed(inbound)
            if len(typed) > 40:
                return None
            for name in allowed:
                if typed in self.catalogs.words(f"commands.{name}.words"):
                    return name
            # A number picks from the choices as shown, command buttons included.
            if typed.isdecimal() and len(typed) < 4 and 1 <= int(typed) <= len(step.choices):
                picked = step.choices[int(typed) - 1]
                if picked.command in allowed:
                    return picked.command
        return None

    @staticmethod
    def _typed(inbound: Inbound) -> str:
        return " ".join(inbound.text.split()).casefold()

    def _is_command_word(self, inbound: Inbound) -> bool:
        if inbound.kind is Kind.CHOICE and inbound.text.startswith("cmd:"):
            return True
        if inbound.kind is not Kind.TEXT:
            return False
        typed = " ".join(inbound.text.split()).casefold()
        return any(typed in self.catalogs.words(f"commands.{name}.words") for name in COMMANDS)

    async def _run_command(self, session: Session, command: str, inbound: Inbound,
                           services: Any) -> list[Reply]:
        log.info("flow.command", command=command, flow=session.flow, state=session.state)
        if command == "cancel":
            reply = self._say(session, Text("common.cancelled"))
            session.end()
            return [reply]
        if command == "restart":
            return await self.start(session, str(session.flow), inbound, services,
                                    prefix=[self._say(session, Text("common.restarted"))])
        if command == "back":
            if session.history:
                session.state = session.history.pop()
                return [self._prompt(session, self._step(session))]
            return [self._say(session, Text("common.back_none")),
                    self._prompt(session, self._step(session))]
        if command == "help":
            return [self._say(session, Text(f"help.{session.flow}")),
                    self._prompt(session, self._step(session))]
        if command == "language":
            session.pending = "language"
            choices = tuple(
                Choice(f"lang:{lang.code}", Text("common.language.option", {"name": lang.name}))
                for lang in self.catalogs.languages)
            return [Reply(Text("common.language.prompt"), session.lang, choices,
                          silent=session.silent)]
        if command == "mine" and MINE_ACTION in self.actions.names():
            return [*await self._inquire(session, MINE_ACTION, inbound, services),
                    self._prompt(session, self._step(session))]
        if command == "report" and REPORT_FLOW in self.flows:
            # A volunteer who meets an emergency: the citizen's three-step report.
            return await self.start(session, REPORT_FLOW, inbound, services)
        if command == "silent" and SILENT_FLOW in self.flows:
            session.silent = True
            return await self.start(session, SILENT_FLOW, inbound, services)
        return [self._prompt(session, self._step(session))]

    def _pick_language(self, inbound: Inbound) -> str | None:
        typed = inbound.text.strip().casefold()
        for i, lang in enumerate(self.catalogs.languages, 1):
            if typed in (str(i), lang.code, lang.name.casefold()):
                return lang.code
        return None

    def _set_language(self, session: Session, code: str) -> list[Reply]:
        session.pending = None
        if self.catalogs.has(code):
            session.lang = code
        return [self._prompt(session, self._step(session))]

    # -- replies --------------------------------------------------------------------------

    def _params(self, session: Session) -> dict[str, Any]:
        """Every saved answer as a displayable parameter, for summaries and receipts."""
        params: dict[str, Any] = {k: v for k, v in session.slots.items()
                                  if isinstance(v, str | int | float) and k != RUN_ID}
        for step in self._compiled(session).flow.steps.values():
            if step.asks and step.save and step.save in session.slots:
                params[step.save] = self.inputs.display(step, session.slots[step.save])
        return params

    def _say(self, session: Session, text: Text) -> Reply:
        return Reply(text, session.lang, silent=session.silent)

    def _prompt(self, session: Session, step: Step) -> Reply:
        assert step.say is not None
        ask = Ask.LOCATION if step.expect == "location" else \
            Ask.PHONE if step.expect == "phone" else None
        choices = tuple(Choice(c.payload, Text(c.label)) for c in step.choices)
        section = self._compiled(session).flow.section_starting(step.name)
        if section is not None:
            choices += (Choice(section.payload, Text(section.skip)),)
        return Reply(Text(step.say, self._params(session)), session.lang, choices, ask,
                     silent=session.silent)
