"""Admin of SLA promises: calendars with holidays (typed or imported from iCal), policies with
their clocks, a preview of due times, and re-applying changed promises to open tickets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select

from cass import lifecycle
from cass.business_time import parse_hours
from cass.extensions import db
from cass.models import (
    CLOCKS,
    BusinessCalendar,
    CalendarHoliday,
    SlaClock,
    SlaPolicy,
    SlaTarget,
    Ticket,
)
from cass.services import sla
from cass.services.audit import audit
from cass.tenancy import current_tenant_id, scoped

MAX_HOLIDAYS_IMPORTED = 1000
MAX_ICAL_BYTES = 1024 * 1024


class SlaAdminError(ValueError):
    """The change breaks a rule; the message is shown to the admin (422)."""


def calendars() -> list[BusinessCalendar]:
    """Return the tenant's calendars, the default first."""
    return list(
        db.session.scalars(
            scoped(BusinessCalendar).order_by(
                BusinessCalendar.is_default.desc(), BusinessCalendar.name
            )
        )
    )


def holidays(calendar: BusinessCalendar) -> list[CalendarHoliday]:
    """Return a calendar's holidays by date."""
    return list(
        db.session.scalars(
            scoped(CalendarHoliday, CalendarHoliday.calendar_id == calendar.id).order_by(
                CalendarHoliday.day
            )
        )
    )


def check_timezone(name: str) -> str:
    """Return the IANA zone name if it exists, else raise SlaAdminError."""
    from cass.services.sites import is_timezone

    if not is_timezone(name):
        raise SlaAdminError(f"{name} is not a timezone (e.g. Europe/Berlin).")
    return name


def save_calendar(
    calendar: BusinessCalendar | None,
    actor_id: int,
    *,
    name: str,
    timezone: str,
    hours_text: str,
    always_open: bool,
    is_default: bool,
    site_id: int | None,
) -> BusinessCalendar:
    """Create or change a calendar; its open clocks are recomputed on the new hours."""
    name = name.strip()
    check_timezone(timezone)
    try:
        hours = parse_hours(hours_text or "")
    except ValueError as exc:
        raise SlaAdminError(f"Hours: {exc}.") from None
    if not always_open and not any(hours):
        raise SlaAdminError("Give some open hours, or make the calendar 24/7.")
    clash = db.session.scalar(
        select(BusinessCalendar.id).where(
            BusinessCalendar.tenant_id == current_tenant_id(),
            BusinessCalendar.name == name,
            BusinessCalendar.id != (calendar.id if calendar else 0),
        )
    )
    if clash:
        raise SlaAdminError(f"A calendar named {name} exists already.")
    if site_id is not None:
        taken = db.session.scalar(
            select(BusinessCalendar.id).where(
                BusinessCalendar.tenant_id == current_tenant_id(),
                BusinessCalendar.site_id == site_id,
                BusinessCalendar.id != (calendar.id if calendar else 0),
            )
        )
        if taken:
            raise SlaAdminError("That site has a calendar already.")
    if calendar is not None and calendar.is_default and not is_default:
        raise SlaAdminError("Make another calendar the default instead.")
    before = _calendar_snapshot(calendar)
    if is_default:
        # Only one default: the previous one stops being it, in the same transaction.
        for other in db.session.scalars(scoped(BusinessCalendar, BusinessCalendar.is_default)):
            if calendar is None or other.id != calendar.id:
                other.is_default = False
        db.session.flush()
    if calendar is None:
        calendar = BusinessCalendar(tenant_id=current_tenant_id(), version=1)
        db.session.add(calendar)
    else:
        calendar.version += 1
    calendar.name = name
    calendar.timezone = timezone
    calendar.hours = [list(map(list, day)) for day in hours]
    calendar.always_open = always_open
    calendar.is_default = is_default
    calendar.site_id = site_id
    calendar.updated_at = datetime.now(UTC)
    db.session.flush()
    audit(actor_id, "business_calendar", calendar.id, "save", before, _calendar_snapshot(calendar))
    reapply(calendar_id=calendar.id if before else None, everything=bool(is_default or site_id))
    db.session.commit()
    return calendar


def _calendar_snapshot(calendar: BusinessCalendar | None) -> dict[str, Any] | None:
    if calendar is None:
        return None
    return {
        "name": calendar.name,
        "timezone": calendar.timezone,
        "hours": calendar.hours,
        "always_open": calendar.always_open,
        "is_default": calendar.is_default,
        "site_id": calendar.site_id,
    }


def delete_calendar(calendar: BusinessCalendar, actor_id: int) -> None:
    """Delete a calendar that no policy names and that is not the default."""
    if calendar.is_default:
        raise SlaAdminError("The default calendar cannot be deleted; make another the default.")
    if db.session.scalar(select(SlaTarget.id).where(SlaTarget.calendar_id == calendar.id).limit(1)):
        raise SlaAdminError("A policy uses this calendar; change the policy first.")
    before = _calendar_snapshot(calendar)
    calendar_id = calendar.id
    db.session.delete(calendar)
    db.session.flush()
    audit(actor_id, "business_calendar", calendar_id, "delete", before, None)
    reapply(everything=True)
    db.session.commit()


def _bump(calendar: BusinessCalendar) -> None:
    calendar.version += 1
    calendar.updated_at = datetime.now(UTC)


def add_holiday(calendar: BusinessCalendar, actor_id: int, day: date, name: str) -> None:
    """Close the calendar on a date."""
    if db.session.scalar(
        select(CalendarHoliday.id).where(
            CalendarHoliday.calendar_id == calendar.id, CalendarHoliday.day == day
        )
    ):
        raise SlaAdminError(f"{day:%Y-%m-%d} is a holiday already.")
    db.session.add(
        CalendarHoliday(
            tenant_id=calendar.tenant_id, calendar_id=calendar.id, day=day, name=name.strip()
        )
    )
    _bump(calendar)
    audit(actor_id, "business_calendar", calendar.id, "holiday", None, {str(day): name})
    reapply(calendar_id=calendar.id)
    db.session.commit()


def delete_holiday(calendar: BusinessCalendar, holiday: CalendarHoliday, actor_id: int) -> None:
    """Open the calendar again on a holiday's date."""
    audit(
        actor_id,
        "business_calendar",
        calendar.id,
        "unholiday",
        {str(holiday.day): holiday.name},
        None,
    )
    db.session.delete(holiday)
    _bump(calendar)
    reapply(calendar_id=calendar.id)
    db.session.commit()


def import_ical(calendar: BusinessCalendar, actor_id: int, data: bytes) -> int:
    """Add the all-day events of an iCal file (recurring ones over three years) as holidays."""
    days = ical_days(data)
    existing = set(
        db.session.scalars(
            select(CalendarHoliday.day).where(CalendarHoliday.calendar_id == calendar.id)
        )
    )
    new = {day: name for day, name in days.items() if day not in existing}
    for day, name in sorted(new.items()):
        db.session.add(
            CalendarHoliday(
                tenant_id=calendar.tenant_id, calendar_id=calendar.id, day=day, name=name[:120]
            )
        )
    if new:
        _bump(calendar)
        audit(actor_id, "business_calendar", calendar.id, "import", None, {"holidays": len(new)})
        reapply(calendar_id=calendar.id)
    db.session.commit()
    return len(new)


def ical_days(data: bytes, today: date | None = None) -> dict[date, str]:
    """Return the dates of an iCal file's all-day events (recurrences from last year to +2)."""
    import icalendar
    from dateutil.rrule import rrulestr

    if len(data) > MAX_ICAL_BYTES:
        raise SlaAdminError("The iCal file is larger than 1 MB.")
    try:
        parsed = icalendar.Calendar.from_ical(data)
    except ValueError as exc:
        raise SlaAdminError(f"Not an iCal file: {exc}") from None
    today = today or datetime.now(UTC).date()
    window = (date(today.year - 1, 1, 1), date(today.year + 2, 12, 31))
    days: dict[date, str] = {}
    for event in parsed.walk("VEVENT"):
        start = event.get("DTSTART")
        if start is None or isinstance(start.dt, datetime):
            continue  # timed events are not days off
        first: date = start.dt
        end = event.get("DTEND")
        length = max((end.dt - first).days, 1) if end is not None else 1
        name = str(event.get("SUMMARY", "Holiday"))
        starts = [first]
        if event.get("RRULE"):
            rule = rrulestr(
                event["RRULE"].to_ical().decode(),
                dtstart=datetime.combine(first, datetime.min.time()),
            )
            starts = [
                moment.date()
                for moment in rule.between(
                    datetime.combine(window[0], datetime.min.time()),
                    datetime.combine(window[1], datetime.min.time()),
                    inc=True,
                )
            ]
        for begin in starts:
            for offset in range(length):
                day = begin + timedelta(days=offset)
                if window[0] <= day <= window[1]:
                    days.setdefault(day, name)
        if len(days) > MAX_HOLIDAYS_IMPORTED:
            raise SlaAdminError(f"More than {MAX_HOLIDAYS_IMPORTED} days off in that file.")
    if not days:
        raise SlaAdminError("The file has no all-day events to import.")
    return days


@dataclass
class TargetInput:
    """One clock of a policy as the admin set it; minutes None means the policy lacks it."""

    clock: str
    minutes: int | None
    calendar_id: int | None = None
    pause_statuses: tuple[str, ...] = ("on_hold",)
    warn_percent: int = 80
    escalations: tuple[dict[str, Any], ...] = ()


def policies() -> list[tuple[SlaPolicy, dict[str, SlaTarget]]]:
    """Return the tenant's policies with their targets by clock, by priority."""
    rows = list(db.session.scalars(scoped(SlaPolicy).order_by(SlaPolicy.priority, SlaPolicy.id)))
    targets: dict[int, dict[str, SlaTarget]] = {p.id: {} for p in rows}
    for target in db.session.scalars(scoped(SlaTarget)):
        targets.setdefault(target.policy_id, {})[target.clock] = target
    return [(p, targets[p.id]) for p in rows]


def targets_of(policy: SlaPolicy) -> dict[str, SlaTarget]:
    """Return a policy's targets by clock."""
    return {
        t.clock: t for t in db.session.scalars(scoped(SlaTarget, SlaTarget.policy_id == policy.id))
    }


def save_policy(
    policy: SlaPolicy | None,
    actor_id: int,
    *,
    name: str,
    priority: str,
    site_id: int | None,
    category: str | None,
    charger_model: str | None,
    active: bool,
    targets: list[TargetInput],
) -> SlaPolicy:
    """Create or change a policy and its clocks; open tickets it may govern are recomputed."""
    if not any(t.minutes for t in targets):
        raise SlaAdminError("Give at least one clock a target.")
    for target in targets:
        if target.minutes is not None and not 1 <= target.minutes <= 525_600:
            raise SlaAdminError("Targets are 1 minute to 365 days.")
        if not 1 <= target.warn_percent <= 99:
            raise SlaAdminError("Warn at 1 to 99 % of the target.")
        unknown = set(target.pause_statuses) - set(lifecycle.OPEN_STATUSES)
        if unknown:
            raise SlaAdminError(f"Only open statuses can pause a clock, not {', '.join(unknown)}.")
    before = _policy_snapshot(policy)
    old_priority = policy.priority if policy else None
    if policy is None:
        policy = SlaPolicy(tenant_id=current_tenant_id())
        db.session.add(policy)
    policy.name = name.strip()
    policy.priority = priority
    policy.site_id = site_id
    policy.category = category or None
    policy.charger_model = (charger_model or "").strip() or None
    policy.active = active
    policy.updated_at = datetime.now(UTC)
    db.session.flush()
    existing = targets_of(policy)
    for given in targets:
        target = existing.get(given.clock)
        if given.minutes is None:
            if target is not None:
                db.session.delete(target)
            continue
        if target is None:
            target = SlaTarget(tenant_id=policy.tenant_id, policy_id=policy.id, clock=given.clock)
            db.session.add(target)
        target.target_minutes = given.minutes
        target.calendar_id = given.calendar_id
        target.pause_statuses = list(given.pause_statuses)
        target.warn_percent = given.warn_percent
        target.escalations = sorted(given.escalations, key=lambda e: e["percent"])
    db.session.flush()
    audit(actor_id, "sla_policy", policy.id, "save", before, _policy_snapshot(policy))
    reapply(priorities={priority, old_priority} - {None})
    db.session.commit()
    return policy


def _policy_snapshot(policy: SlaPolicy | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    return {
        "name": policy.name,
        "priority": policy.priority,
        "site_id": policy.site_id,
        "category": policy.category,
        "charger_model": policy.charger_model,
        "active": policy.active,
        "targets": {
            c: [t.target_minutes, t.calendar_id, list(t.pause_statuses), t.warn_percent]
            for c, t in targets_of(policy).items()
        },
    }


def delete_policy(policy: SlaPolicy, actor_id: int) -> None:
    """Delete a policy; the open tickets it governed fall to the next matching one."""
    before = _policy_snapshot(policy)
    policy_id, priority = policy.id, policy.priority
    db.session.execute(delete(SlaTarget).where(SlaTarget.policy_id == policy_id))
    db.session.delete(policy)
    db.session.flush()
    audit(actor_id, "sla_policy", policy_id, "delete", before, None)
    reapply(priorities={priority})
    db.session.commit()


def reapply(
    *,
    calendar_id: int | None = None,
    priorities: set[str] | None = None,
    everything: bool = False,
) -> int:
    """Recompute the clocks of the open tickets a change may affect, keeping paused credit."""
    query = scoped(Ticket, Ticket.status.in_((*lifecycle.OPEN_STATUSES, "resolved")))
    if not everything:
        if calendar_id is not None:
            query = query.where(
                Ticket.id.in_(select(SlaClock.ticket_id).where(SlaClock.calendar_id == calendar_id))
            )
        elif priorities:
            query = query.where(Ticket.priority.in_(priorities))
        else:
            return 0
    now = datetime.now(UTC)
    count = 0
    for ticket in db.session.scalars(query.execution_options(yield_per=500)):
        sla.recompute(ticket, now, reason="policy changed")
        count += 1
    return count


@dataclass(frozen=True)
class PreviewLine:
    """When one clock of a would-be ticket is due."""

    clock: str
    label: str
    minutes: int
    calendar: str
    due: datetime


def preview(
    priority: str, site_id: int | None, category: str, at: datetime | None = None
) -> tuple[SlaPolicy | None, list[PreviewLine]]:
    """Say which policy a ticket created at `at` would get and when each of its clocks is due."""
    at = at or datetime.now(UTC)
    probe = Ticket(
        tenant_id=current_tenant_id(), priority=priority, site_id=site_id, category=category
    )
    plan = sla.plan_for(probe)
    if plan.policy_id is None:
        return None, []
    names = dict(
        db.session.execute(
            select(BusinessCalendar.id, BusinessCalendar.name).where(
                BusinessCalendar.tenant_id == current_tenant_id()
            )
        ).all()
    )
    lines = []
    for clock in CLOCKS:
        target = plan.targets.get(clock)
        if target is None:
            continue
        calendar_id = plan.calendar_id(clock)
        calendar = sla.calendar(calendar_id, plan.versions.get(calendar_id or 0))
        lines.append(
            PreviewLine(
                clock,
                CLOCKS[clock],
                target.target_minutes,
                names.get(calendar_id, "24/7"),
                calendar.add(at, timedelta(minutes=target.target_minutes)),
            )
        )
    policy = db.session.get(SlaPolicy, plan.policy_id)
    return policy, lines


def calendar_usage() -> dict[int, int]:
    """Return how many policy clocks name each calendar."""
    return dict(
        db.session.execute(
            select(SlaTarget.calendar_id, func.count())
            .where(SlaTarget.tenant_id == current_tenant_id(), SlaTarget.calendar_id.isnot(None))
            .group_by(SlaTarget.calendar_id)
        ).all()
    )


ROLE_WORDS = {"admin", "as_manager", "call_center", "as_engineer"}


def parse_escalations(text_value: str) -> tuple[dict[str, Any], ...]:
    """Parse lines such as "100% notify as_manager", "150% raise priority", "200% reassign
    engineer@demo.test" into escalation levels (users are looked up in the tenant)."""
    from cass.models import User

    levels = []
    for number, line in enumerate((text_value or "").splitlines(), 1):
        words = line.split()
        if not words:
            continue
        where = f"Escalation line {number}"
        try:
            percent = int(words[0].rstrip("%"))
        except ValueError:
            raise SlaAdminError(f"{where}: start with a percentage of the target (100%).") from None
        if not 1 <= percent <= 1000:
            raise SlaAdminError(f"{where}: the percentage is 1 to 1000.")
        verb, rest = (words[1].lower() if len(words) > 1 else ""), words[2:]
        level: dict[str, Any] = {"percent": percent}
        if verb == "raise" and rest[:1] == ["priority"]:
            level["raise_priority"] = True
        elif verb in ("notify", "reassign") and len(rest) == 1:
            who = rest[0]
            if verb == "notify" and who in ROLE_WORDS:
                level["notify_role"] = who
            else:
                user = db.session.scalar(
                    select(User).where(
                        User.tenant_id == current_tenant_id(), User.email == who.lower()
                    )
                )
                if user is None:
                    raise SlaAdminError(f"{where}: no user {who} here.")
                level["notify_user_id" if verb == "notify" else "reassign_user_id"] = user.id
        else:
            raise SlaAdminError(
                f"{where}: write “notify ROLE or EMAIL”, “raise priority” or “reassign EMAIL”."
            )
        levels.append(level)
    return tuple(levels)


def format_escalations(levels: list[dict[str, Any]]) -> str:
    """Write escalation levels back as the lines parse_escalations() reads."""
    from cass.models import User

    lines = []
    for level in levels:
        percent = f"{level['percent']}%"
        if level.get("raise_priority"):
            lines.append(f"{percent} raise priority")
        elif level.get("notify_role"):
            lines.append(f"{percent} notify {level['notify_role']}")
        for key, verb in (("notify_user_id", "notify"), ("reassign_user_id", "reassign")):
            if level.get(key):
                user = db.session.get(User, level[key])
                lines.append(f"{percent} {verb} {user.email if user else '?'}")
    return "\n".join(lines)


def format_hours_of(calendar: BusinessCalendar) -> str:
    """Write a calendar's hours in the form the calendar form reads."""
    from cass.business_time import format_hours

    return format_hours(tuple(tuple((a, b) for a, b in day) for day in calendar.hours))
