"""Slack messages for alert notifications: pure rendering, no I/O.

A monitor run that breaches sends **one** message: a header naming the monitor and how many checks
fail or warn, the headline of what breaches (the report's, see :mod:`driftline.triage`), the
window and the owner, then one line per breach, worst first, and buttons to the runbook and the
report. When an alert resolves, a short "Resolved" message goes into the thread of
the message that opened it. Messages are Block Kit blocks plus a plain-text ``text`` that Slack
uses for notifications and that webhooks without Block Kit support show instead.

Everything the user wrote (check names, segment values, thresholds) is escaped for Slack's mrkdwn
and clipped, so that a long or odd value can never break a message or push it over Slack's limits
(50 blocks, 3,000 characters per section, about 12,000 characters of block text per message).
Values that come from the data (a segment value, a column name) are shown as code spans, in which
Slack formats nothing, with line breaks written as ``\\n``: a segment value such as
``"EU\\n*fake* <http://x|click>"`` can neither start a line of its own nor become bold or a link.

>>> from datetime import datetime
>>> run = MonitorRun("lead_scoring", None, "@growth-ml", None,
...                  datetime(2026, 10, 3), datetime(2026, 10, 4), None)
>>> breach = Breach("drift_psi", "drift", "psi", "company_size", None, None, "fail", 0.312,
...                 "0.25", 0.021, "new", datetime(2026, 10, 3), "lead_scoring-drift_psi")
>>> print(render_text(render_run_message(run, [breach], "#ml-alerts")))
to #ml-alerts
[fail] lead_scoring: 1 failing
company_size drifted since 3 Oct
Window: 2026-10-03 → 2026-10-04 UTC · Owner: @growth-ml
----------------------------------------
[fail] drift_psi · company_size — psi 0.312 (threshold 0.25, +0.291 since reference) · new
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from driftline import triage

# Slack's Block Kit limits (https://api.slack.com/reference/block-kit).
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_CONTEXT_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_URL = 3000
# chat.postMessage also refuses blocks whose texts add up to more than about 12,000 characters
# (msg_blocks_too_long); the limit is undocumented, so all texts together stay well below it.
MAX_BLOCKS_TEXT = 10_000

# Our own bounds, well inside Slack's: a user-written name or value is clipped to this many
# characters, and the fallback text is kept short because it only feeds notifications.
MAX_FIELD = 80
MAX_DESCRIPTION = 300
MAX_FALLBACK_TEXT = 3000

_EMOJI = {"fail": ":red_circle:", "warn": ":large_yellow_circle:", "resolved": ":white_check_mark:"}
_SEVERITY_RANK = {"fail": 0, "warn": 1}
_KIND_RANK = {"new": 0, "escalated": 0, "reminder": 1, "resolved": 2}
_ONGOING = {"fail": "failing", "warn": "warning"}


@dataclass(frozen=True)
class Breach:
    """One check result that breached (or, with ``kind="resolved"``, stopped breaching)."""

    check_name: str
    check_type: str  # drift|performance|fairness|quality|latency|metric
    metric: str
    column_name: str | None
    segment_key: str | None
    segment_value: str | None
    severity: str  # warn|fail
    value: float | None
    threshold: str | None  # as written, e.g. "0.25", "{below: 0.7}", "anomaly band [0.1, 0.3]"
    reference_value: float | None  # the same metric on the reference window, if known
    kind: str  # new|escalated|reminder|resolved
    # The window_start of the episode's first breaching window (SPEC §5): "since" is the day the
    # breach began, also when earlier windows were backfilled after it opened.
    opened_at: datetime | None
    anchor: str  # the breach's anchor in the report, e.g. "lead_scoring-drift_psi"
    # which segments explain an overall change, e.g. "region: latam −0.21 of −0.25 (region mix −0.03)"
    explained_by: str | None = None


@dataclass(frozen=True)
class MonitorRun:
    """The monitor window whose breaches a message reports."""

    monitor: str
    description: str | None
    owner: str | None
    runbook: str | None
    window_start: datetime
    window_end: datetime
    report_url: str | None


@dataclass(frozen=True)
class SlackMessage:
    """A message ready to post: Block Kit blocks plus the plain-text fallback."""

    channel: str
    text: str
    blocks: list[dict]
    thread_ts: str | None = None


# --------------------------------------------------------------------------------------------
# Public rendering functions
# --------------------------------------------------------------------------------------------


def render_run_message(
    run: MonitorRun, breaches: Sequence[Breach], channel: str, max_items: int = 10
) -> SlackMessage:
    """The one message a monitor run sends: every breach of the run, worst first.

    At most ``max_items`` breaches are listed, the rest summed up as "+N more"; fewer are listed
    when more would not fit in Slack's limits on blocks and characters.
    """
    ordered = sorted(breaches, key=_worst_first)
    shown = ordered[: max(max_items, 0)]
    lines = [_breach_line(breach, run.report_url) for breach in shown]

    header, intro, footer = _header_block(run, ordered), _intro_block(run), _buttons(run, ordered)
    headline = _headline(run, ordered)
    # Room left for the breach lines, keeping a block and some text for the "+N more" line.
    fixed_blocks = 5 + (1 if footer else 0)  # header, headline, intro, divider, "+N more" (and buttons)
    fixed_text = len(header["text"]["text"]) + len(headline) + len(intro["text"]["text"]) + MAX_FIELD
    sections, not_fitting = _pack(
        lines, max_sections=MAX_BLOCKS - fixed_blocks, max_chars=MAX_BLOCKS_TEXT - fixed_text
    )
    hidden = len(ordered) - len(shown) + not_fitting

    blocks = [header, _plain_section(headline), intro, {"type": "divider"}]
    blocks += [_section(text) for text in sections]
    if hidden:
        blocks.append(_context(_more_text(hidden, run.report_url)))
    if footer:
        blocks.append(footer)
    text = _fallback_text(run, ordered, lines[: len(lines) - not_fitting], hidden)
    return SlackMessage(channel=channel, text=text, blocks=blocks)


def render_resolution(
    run: MonitorRun, breach: Breach, channel: str, thread_ts: str
) -> SlackMessage:
    """The "Resolved" reply posted in the thread of the message that opened the alert.

    It quotes the original breach, so that it still reads well where it cannot be threaded
    (an incoming webhook posts it as a normal message).
    """
    was = f"{_ONGOING.get(breach.severity, breach.severity)} since {_when(breach.opened_at)}"
    quote = f"> {_EMOJI.get(breach.severity, '•')} {_subject(breach)} — {was}"
    now = f"{_field(breach.metric)} now *{_number(breach.value)}*"
    if breach.threshold:
        now += f" (threshold {_field(breach.threshold)})"
    link = _report_link(run.report_url, breach.anchor, "report")
    lines = [f"{_EMOJI['resolved']} *Resolved* · {_field(run.monitor)}", quote, now + link]
    context = f"Window: {_window(run)}"

    text = f"Resolved: {run.monitor} · {_plain_subject(breach)} — now {_number(breach.value)}"
    blocks = [_section(_clip("\n".join(lines), MAX_SECTION_TEXT)), _context(context)]
    return SlackMessage(channel=channel, text=text, blocks=blocks, thread_ts=thread_ts)


def render_text(message: SlackMessage) -> str:
    """A human-readable preview of a message, for ``--dry-run`` and the demo."""
    where = f"to {message.channel}"
    if message.thread_ts:
        where += f" (in thread {message.thread_ts})"
    out = [where]
    for block in message.blocks:
        out.extend(_block_as_text(block))
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# One breach
# --------------------------------------------------------------------------------------------


def _worst_first(breach: Breach) -> tuple:
    """Sort key: open before resolved, fail before warn, new/escalated before reminders."""
    return (
        breach.kind == "resolved",
        _SEVERITY_RANK.get(breach.severity, len(_SEVERITY_RANK)),
        _KIND_RANK.get(breach.kind, len(_KIND_RANK)),
        breach.check_name,
        breach.column_name or "",
        # the overall row (no segment) before its segments
        (breach.segment_key or "", breach.segment_value or ""),
    )


def _breach_line(breach: Breach, report_url: str | None) -> str:
    """``:red_circle: *check* · `column` · key=value — metric *value* (threshold …) · state``."""
    status = "resolved" if breach.kind == "resolved" else breach.severity
    line = f"{_EMOJI.get(status, ':grey_question:')} {_subject(breach)} — {_measurement(breach)}"
    line += f" · _{_state(breach)}_"
    return line + _report_link(report_url, breach.anchor, "report")


def _subject(breach: Breach) -> str:
    """What breached, in mrkdwn: check name, column and segment (the last two as code spans)."""
    parts = [f"*{_field(breach.check_name)}*"]
    if breach.column_name:
        parts.append(_code(breach.column_name))
    if breach.segment_key:
        parts.append(_code(_segment(breach)))
    return " · ".join(parts)


def _segment(breach: Breach) -> str:
    value = "null" if breach.segment_value is None else breach.segment_value
    return f"{breach.segment_key}={value}"


def _plain_subject(breach: Breach) -> str:
    """What breached, as words for notification text (data values as code spans there too: Slack
    renders ``text`` as mrkdwn where it shows it)."""
    subject = _field(breach.check_name)
    if breach.column_name:
        subject += f" on {_code(breach.column_name)}"
    if breach.segment_key:
        subject += f" ({_code(_segment(breach))})"
    return subject


def _measurement(breach: Breach) -> str:
    """The value against its threshold, and how far it moved since the reference window."""
    notes = []
    if breach.threshold:
        notes.append(f"threshold {_field(breach.threshold)}")
    if breach.value is not None and breach.reference_value is not None:
        change = breach.value - breach.reference_value
        notes.append(f"{_number(change, signed=True)} since reference")
    if breach.explained_by and breach.kind != "resolved":
        notes.append(f"explained by {_field(breach.explained_by)}")
    measured = f"{_field(breach.metric)} *{_number(breach.value)}*"
    return f"{measured} ({', '.join(notes)})" if notes else measured


def _state(breach: Breach) -> str:
    """Where the alert stands: new, escalated, still failing since when, or resolved."""
    if breach.kind == "escalated":
        return f"escalated to {breach.severity}"
    if breach.kind == "reminder":
        ongoing = f"still {_ONGOING.get(breach.severity, breach.severity)}"
        return f"{ongoing} since {_when(breach.opened_at)}" if breach.opened_at else ongoing
    return _field(breach.kind)


# --------------------------------------------------------------------------------------------
# The message around the breaches
# --------------------------------------------------------------------------------------------


def _counts(breaches: Sequence[Breach]) -> str:
    """``2 failing, 1 warning, 1 resolved``."""
    open_ = [b for b in breaches if b.kind != "resolved"]
    parts = [
        (sum(b.severity == "fail" for b in open_), "failing"),
        (sum(b.severity == "warn" for b in open_), "warning"),
        (len(breaches) - len(open_), "resolved"),
    ]
    return ", ".join(f"{n} {label}" for n, label in parts if n) or "no breaches"


def _worst_emoji(breaches: Sequence[Breach]) -> str:
    severities = {b.severity for b in breaches if b.kind != "resolved"}
    if "fail" in severities:
        return _EMOJI["fail"]
    return _EMOJI["warn"] if "warn" in severities else _EMOJI["resolved"]


def _header_block(run: MonitorRun, breaches: Sequence[Breach]) -> dict:
    title = f"{_worst_emoji(breaches)} {run.monitor}: {_counts(breaches)}"
    text = {"type": "plain_text", "text": _clip_plain(title, MAX_HEADER_TEXT), "emoji": True}
    return {"type": "header", "text": text}


def _headline(run: MonitorRun, breaches: Sequence[Breach]) -> str:
    """The report's headline for the open breaches of the message, on one line: "3 features
    drifted since 30 Sep; precision in latam fell from 0.64 to 0.33". A message knows only its
    breaches, so drift is counted without the "of n" the report adds."""
    findings = [
        triage.Finding(
            b.check_name, b.check_type, b.metric, b.column_name, b.segment_key, b.segment_value,
            b.severity, b.value, reference=b.reference_value, threshold=b.threshold, since=b.opened_at,
        )  # fmt: skip
        for b in breaches
        if b.kind != "resolved"
    ]
    if not findings:
        return "Resolved: nothing breaches any more."
    today = _utc(run.window_end).replace(tzinfo=None)
    findings = [f if f.since is None else _naive(f) for f in findings]
    return _clip(_escape(visible(triage.summarize(findings, today=today).headline)), MAX_SECTION_TEXT)


def _naive(finding: triage.Finding) -> triage.Finding:
    """The finding with its time as naive UTC, as the summary compares days."""
    return replace(finding, since=_utc(finding.since).replace(tzinfo=None))


def _plain_section(text: str) -> dict:
    """A section of plain text: Slack formats nothing in it (no bold, no links), so names and
    values from the data cannot fake markup; ``&``, ``<`` and ``>`` come escaped, as Slack wants
    them in every text."""
    return {"type": "section", "text": {"type": "plain_text", "text": text, "emoji": False}}


def _intro_block(run: MonitorRun) -> dict:
    """Description, window, owner (mentioned) and, when it is not a link, the runbook."""
    lines = []
    if run.description:
        lines.append(_clip(_escape(run.description), MAX_DESCRIPTION))
    facts = [f"*Window:* {_window(run)}"]
    if run.owner:
        facts.append(f"*Owner:* {_mention(run.owner)}")
    if run.runbook and not _is_link(run.runbook):
        facts.append(f"*Runbook:* {_clip(_escape(run.runbook), MAX_DESCRIPTION)}")
    lines.append(" · ".join(facts))
    return _section("\n".join(lines))


def _buttons(run: MonitorRun, ordered: Sequence[Breach]) -> dict | None:
    """An actions block with the runbook and the report (at the worst breach), when known."""
    buttons = []
    if run.runbook and _is_link(run.runbook):
        buttons.append(_button("Open runbook", run.runbook, "driftline_runbook", primary=True))
    if run.report_url:
        url = _anchored(run.report_url, ordered[0].anchor if ordered else None)
        if _is_link(url):
            buttons.append(_button("View report", url, "driftline_report"))
    return {"type": "actions", "elements": buttons} if buttons else None


def _button(label: str, url: str, action_id: str, primary: bool = False) -> dict:
    button = {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "url": url,
        "action_id": action_id,
    }
    if primary:
        button["style"] = "primary"
    return button


def _more_text(hidden: int, report_url: str | None) -> str:
    if report_url and _is_link(report_url):
        return f"+{hidden} more — <{_link_target(report_url)}|see the report>"
    return f"+{hidden} more"


def _fallback_text(
    run: MonitorRun, breaches: Sequence[Breach], lines: Sequence[str], hidden: int
) -> str:
    """The ``text`` field: a one-line summary, then the listed breaches, within a small budget.
    The headline is left out: Slack formats ``text`` as mrkdwn, and the headline names values
    from the data outside code spans."""
    summary = f"{_worst_emoji(breaches)} {_escape(run.monitor)}: {_counts(breaches)}"
    summary += f" ({_window(run)})"
    if run.owner:
        summary += f" · owner {_mention(run.owner)}"
    kept = [_clip(summary, MAX_SECTION_TEXT)]
    size = len(kept[0])
    for index, line in enumerate(lines):
        if size + len(line) + 1 > MAX_FALLBACK_TEXT:
            hidden += len(lines) - index
            break
        kept.append(line)
        size += len(line) + 1
    if hidden:
        kept.append(f"+{hidden} more")
    return "\n".join(kept)


def _pack(lines: Sequence[str], max_sections: int, max_chars: int) -> tuple[list[str], int]:
    """Pack lines into section texts of at most MAX_SECTION_TEXT characters, never splitting one.

    At most ``max_sections`` sections and ``max_chars`` characters in all. Returns the texts and
    how many lines did not fit.
    """
    sections: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        line = _clip(line, MAX_SECTION_TEXT)
        used += len(line) + 1
        if used > max_chars:
            return sections, len(lines) - index
        if sections and len(sections[-1]) + 1 + len(line) <= MAX_SECTION_TEXT:
            sections[-1] += "\n" + line
        elif len(sections) < max_sections:
            sections.append(line)
        else:
            return sections, len(lines) - index
    return sections, 0


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict:
    element = {"type": "mrkdwn", "text": _clip(text, MAX_CONTEXT_TEXT)}
    return {"type": "context", "elements": [element]}


# --------------------------------------------------------------------------------------------
# Formatting values, times, links and mentions
# --------------------------------------------------------------------------------------------


def _number(value: float | None, signed: bool = False) -> str:
    """Four significant digits; large counts with thousands separators (``12,345``), up to a
    trillion (a MAPE of 1e16 reads ``1e+16``, not 17 digits).

    >>> [_number(v) for v in (0.123456, 12345.6, 2.5e16)] + [_number(0.5, signed=True)]
    ['0.1235', '12,346', '2.5e+16', '+0.5']
    """
    if value is None:
        return "n/a"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    sign = "+" if signed else ""
    if 10_000 <= abs(value) < 1e12:
        return f"{value:{sign},.0f}"
    return f"{value:{sign}.4g}"


def _utc(moment: datetime) -> datetime:
    """Timestamps without an offset are UTC, as everywhere in driftline."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _when(moment: datetime | None) -> str:
    """``2026-10-03`` at midnight, ``2026-10-03 14:00`` otherwise (UTC)."""
    if moment is None:
        return "an unknown time"
    moment = _utc(moment)
    if (moment.hour, moment.minute, moment.second) == (0, 0, 0):
        return moment.strftime("%Y-%m-%d")
    return moment.strftime("%Y-%m-%d %H:%M")


def _window(run: MonitorRun) -> str:
    return f"{_when(run.window_start)} → {_when(run.window_end)} UTC"


def _is_link(text: str) -> bool:
    """Slack accepts only http(s) URLs of at most 3000 characters in buttons."""
    return text.startswith(("http://", "https://")) and len(text) <= MAX_URL and " " not in text


def _anchored(url: str, anchor: str | None) -> str:
    return f"{url}#{anchor}" if anchor else url


def _link_target(url: str) -> str:
    """A URL that cannot break out of mrkdwn's ``<url|label>`` syntax."""
    return url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")


def _report_link(report_url: str | None, anchor: str | None, label: str) -> str:
    """`` · <report_url#anchor|label>``, or nothing when there is no usable report URL."""
    if not report_url:
        return ""
    url = _anchored(report_url, anchor)
    # A very long URL is left out rather than cut: a cut link leads nowhere.
    if not _is_link(url) or len(url) > 1000:
        return ""
    return f" · <{_link_target(url)}|{label}>"


_MENTION = re.compile(r"(<(?:@|!subteam\^|!here|!channel|!everyone|#)[^<>\s]*>)")


def _mention(owner: str) -> str:
    """The owner as written; Slack mentions like ``<@U123>`` or ``<!subteam^S123>`` pass through.

    A plain ``@growth-ml`` cannot be turned into a mention without asking Slack for the group's
    id, so it is shown as written (and notified only where the workspace links names).
    """
    parts = _MENTION.split(_clip_plain(owner, MAX_DESCRIPTION))
    return "".join(part if _MENTION.fullmatch(part) else _escape(part) for part in parts)


def _escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Line breaks (\n, \r, \u2028 ...) and the other control characters.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def visible(text: str) -> str:
    """``text`` on one line: line breaks and other control characters written as their escapes,
    so that a value cannot start a line of its own (``"EU\\n*fake*"`` shows ``EU\\n*fake*``).

    >>> print(visible("EU\\n*fake*\\t1"))
    EU\\n*fake*\\t1
    """
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _field(text: str | None) -> str:
    """A user-written value, escaped for mrkdwn, on one line, clipped to MAX_FIELD characters."""
    return _clip(_escape(visible(str(text))), MAX_FIELD)


def _code(value: str) -> str:
    """A value from the data as a code span, which Slack shows as written: ``*``, ``_`` and ``~``
    format nothing inside it. A backtick would end the span, so it becomes ``'``; ``<``, ``>``
    and ``&`` are escaped (entities are decoded, so no link or mention can form); line breaks
    show as ``\\n``.

    >>> _code("EU\\n*fake* <http://x|click> `x`")
    "`EU\\\\n*fake* &lt;http://x|click&gt; 'x'`"
    """
    return f"`{_field(str(value).replace('`', chr(39)))}`"


def _clip_plain(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clip(mrkdwn: str, limit: int) -> str:
    """Cut mrkdwn to ``limit`` characters without leaving half an entity or half a link behind."""
    if len(mrkdwn) <= limit:
        return mrkdwn
    cut = mrkdwn[: limit - 1]
    amp, semicolon = cut.rfind("&"), cut.rfind(";")
    if amp > semicolon:  # "&am" of "&amp;"
        cut = cut[:amp]
    opening, closing = cut.rfind("<"), cut.rfind(">")
    if opening > closing:  # "<https://exam" of a link
        cut = cut[:opening]
    return cut + "…"


# --------------------------------------------------------------------------------------------
# Plain-text preview
# --------------------------------------------------------------------------------------------

_PREVIEW_EMOJI = {
    ":red_circle:": "[fail]",
    ":large_yellow_circle:": "[warn]",
    ":white_check_mark:": "[resolved]",
}
_LINK = re.compile(r"<(https?://[^|>]+)\|([^>]+)>")


def _block_as_text(block: dict) -> list[str]:
    """The lines a block shows, in plain text."""
    kind = block.get("type")
    if kind == "section" and block["text"]["type"] == "plain_text":
        return _unescape(block["text"]["text"]).splitlines()
    if kind in ("header", "section"):
        return _plain(block["text"]["text"]).splitlines()
    if kind == "context":
        return [" · ".join(_plain(element.get("text", "")) for element in block["elements"])]
    if kind == "divider":
        return ["-" * 40]
    if kind == "actions":
        return ["  ".join(f"[{b['text']['text']}: {b['url']}]" for b in block["elements"])]
    return []


_CODE_SPAN = re.compile(r"`([^`\n]*)`")


def _plain(mrkdwn: str) -> str:
    """mrkdwn → plain text: links spelled out, markup and entities removed, emoji as words. What
    code spans hold is shown as written: ``*`` in a value is not bold there either."""
    pieces = _CODE_SPAN.split(mrkdwn)  # odd positions: the contents of code spans
    text = "".join(piece if i % 2 else _without_markup(piece) for i, piece in enumerate(pieces))
    return _unescape(text)


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _without_markup(mrkdwn: str) -> str:
    text = _LINK.sub(lambda m: f"{m.group(2)}: {m.group(1)}", mrkdwn)
    for code, word in _PREVIEW_EMOJI.items():
        text = text.replace(code, word)
    text = re.sub(r"(?<![\w*])\*([^*\n]+)\*", r"\1", text)
    return re.sub(r"(?<!\w)_([^_\n]+)_(?!\w)", r"\1", text)
