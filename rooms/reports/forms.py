"""The reports' filters: a period of days, an area, an agent (the page's form and its CSV links)."""

import datetime as dt
import zoneinfo
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.utils import timezone

from rooms.models import Area
from rooms.reports.selectors import DEFAULT_DAYS, MAX_DAYS, report_period
from rooms.reports.statements import Period
from users.models import AgentProfile
from users.selectors import display_name


def business_today() -> dt.date:
    return timezone.localdate(timezone=zoneinfo.ZoneInfo(settings.BUSINESS_TIMEZONE))


class ReportFilters(forms.Form):
    start = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}))
    area = forms.TypedChoiceField(label="Area", required=False, coerce=int, empty_value=None)
    agent = forms.TypedChoiceField(label="Agent", required=False, coerce=int, empty_value=None)

    def __init__(self, data: dict | None = None) -> None:
        today = business_today()
        initial = {"start": today - dt.timedelta(days=DEFAULT_DAYS - 1), "end": today}
        # Nothing asked: the default period, as if it had been.
        given = {key: value for key, value in (data or {}).items() if value not in ("", None)}
        super().__init__({**{k: v.isoformat() for k, v in initial.items()}, **given})
        # Every area and every agent who ever had a profile (gone agents stay reportable).
        self.area_names = dict(Area.objects.values_list("id", "name"))
        profiles = AgentProfile.objects.select_related("user").order_by("user__username")
        self.agent_names = {profile.user_id: display_name(profile.user) for profile in profiles}
        area_field, agent_field = self.fields["area"], self.fields["agent"]
        assert isinstance(area_field, forms.ChoiceField)
        assert isinstance(agent_field, forms.ChoiceField)
        area_field.choices = [("", "All areas"), *self.area_names.items()]
        agent_field.choices = [
            ("", "All agents"),
            *sorted(self.agent_names.items(), key=lambda item: item[1].casefold()),
        ]

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end:
            if end < start:
                raise forms.ValidationError("The period ends before it starts.")
            if (end - start).days + 1 > MAX_DAYS:
                raise forms.ValidationError(f"A report covers at most {MAX_DAYS} days.")
        return cleaned

    def period(self) -> Period:
        """The period asked for (call once the form is valid)."""
        data = self.cleaned_data
        return report_period(
            first_day=data["start"],
            last_day=data["end"],
            area_id=data["area"],
            agent_id=data["agent"],
        )

    def query(self) -> str:
        """The filters as a query string, for the CSV links."""
        data = self.cleaned_data
        values = {"start": data["start"].isoformat(), "end": data["end"].isoformat()}
        for name in ("area", "agent"):
            if data.get(name) is not None:
                values[name] = str(data[name])
        return urlencode(values)
