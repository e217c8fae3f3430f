"""What the epidemiological marts should hold, recounted from a registry CSV with the csv module and plain Python.

Written from the marts' definitions (docs/reporting.md and each .sql file's header), not from the SQL: the tests
compare the two. Dates outside the registry's span (the first notification from 2020 on .. the publication) are
typing errors that no time series counts.
"""

import math
from collections import Counter, defaultdict
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from covid_pipeline_tests.helpers.registry import read_records

BANDS = (("0-19", 0, 19), ("20-39", 20, 39), ("40-59", 40, 59), ("60-79", 60, 79), ("80+", 80, 200))


def rounded(value: float | Decimal | None, places: int) -> Decimal | None:
    """PostgreSQL's round(numeric, places): halves away from zero."""
    if value is None:
        return None
    return Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def ratio(part: int, whole: int, places: int, scale: int = 1) -> Decimal | None:
    return rounded(Decimal(scale * part) / Decimal(whole), places) if whole else None


def day(text: str) -> date | None:
    return date.fromisoformat(text) if text else None


def monday(d: date) -> date:
    return d - timedelta(days=d.weekday())


def age_band(case: dict) -> str:
    if case["edad"] == "":
        return "Unknown"
    years = int(case["edad"]) // 12 if case["edad_años_meses"] == "Meses" else int(case["edad"])
    return next(name for name, low, high in BANDS if low <= years <= high)


class Registry:
    """A registry's cases as the loader keeps them (the last row of an id wins), and its span of dates."""

    def __init__(self, path: Path):
        self.cases = list({r["id_evento_caso"]: r for r in read_records(path)}.values())
        [(published, _)] = Counter(r["ultima_actualizacion"] for r in self.cases).most_common(1)
        self.publication = date.fromisoformat(published)
        notified = [d for r in self.cases if (d := day(r["fecha_apertura"])) and d >= date(2020, 1, 1)]
        notified = [d for d in notified if d <= self.publication]
        self.first, self.last_notification = min(notified), max(notified)

    @staticmethod
    def province(case: dict) -> int:
        return int(case["residencia_provincia_id"] or 99)

    def in_span(self, case: dict) -> bool:
        opened = day(case["fecha_apertura"])
        return opened is not None and self.first <= opened <= self.publication

    def confirmed(self) -> list[dict]:
        return [r for r in self.cases if r["clasificacion_resumen"] == "Confirmado"]

    def plausible(self) -> list[tuple[dict, int]]:
        """Confirmed cases notified in the span whose onset lies 0-30 days before, with that delay."""
        found = []
        for case in self.confirmed():
            onset = day(case["fecha_inicio_sintomas"])
            if (
                onset
                and self.in_span(case)
                and 0 <= (delay := (day(case["fecha_apertura"]) - onset).days) <= 30
            ):
                found.append((case, delay))
        return found

    # ---- the marts ----

    def positivity_by_province_week(self, names: dict[int, str]) -> dict[tuple, tuple]:
        """(province_id, week_start) -> (province, confirmed, discarded, positivity)."""
        counts = Counter()
        for case in filter(self.in_span, self.cases):
            status = case["clasificacion_resumen"]
            if status in ("Confirmado", "Descartado"):
                counts[self.province(case), monday(day(case["fecha_apertura"])), status] += 1
        provinces = {p for p, _, _ in counts}
        weeks = [
            monday(self.first) + timedelta(weeks=n)
            for n in range((self.publication - monday(self.first)).days // 7 + 1)
        ]
        table = {}
        for province in provinces:
            for week in weeks:
                confirmed, discarded = (
                    counts[province, week, "Confirmado"],
                    counts[province, week, "Descartado"],
                )
                table[province, week] = (
                    names.get(province, "Unknown"),
                    confirmed,
                    discarded,
                    ratio(confirmed, confirmed + discarded, 4),
                )
        return table

    def incidence_by_province(self, names: dict[int, str], populations: dict[int, int]) -> dict[int, tuple]:
        """province_id -> (province, population, confirmed, deaths, confirmed per 100k, deaths per 100k)."""
        confirmed, deaths = Counter(), Counter()
        for case in self.confirmed():
            confirmed[self.province(case)] += 1
            deaths[self.province(case)] += case["fallecido"] == "SI"
        table = {}
        for province in set(populations) | {self.province(case) for case in self.cases}:
            population = populations.get(province)
            table[province] = (
                names.get(province, "Unknown"),
                population,
                confirmed[province],
                deaths[province],
                ratio(confirmed[province], population, 2, 100_000) if population else None,
                ratio(deaths[province], population, 2, 100_000) if population else None,
            )
        return table

    def notification_delay(self) -> Counter:
        """(province_id, month, delay_days) -> cases."""
        return Counter(
            (self.province(case), day(case["fecha_apertura"]).replace(day=1), delay)
            for case, delay in self.plausible()
        )

    def notification_delay_summary(self, names: dict[int, str]) -> dict[tuple, tuple]:
        """(province_id or None for the country, month) -> (province, cases, median_days, p90_days)."""
        delays = defaultdict(list)
        for case, delay in self.plausible():
            month = day(case["fecha_apertura"]).replace(day=1)
            delays[self.province(case), month].append(delay)
            delays[None, month].append(delay)

        def percentile(values: list[int], fraction: float) -> int:  # percentile_disc
            ordered = sorted(values)
            return ordered[math.ceil(fraction * len(ordered)) - 1]

        return {
            (province, month): (
                "Argentina" if province is None else names.get(province, "Unknown"),
                len(values),
                percentile(values, 0.5),
                percentile(values, 0.9),
            )
            for (province, month), values in delays.items()
        }

    def onset_curve(self, province: int | None = None) -> dict[date, tuple]:
        """date -> (confirmed, complete, nowcast, nowcast_low, nowcast_high), for a province or the country."""
        plausible = self.plausible()
        cases = [(c, d) for c, d in plausible if province is None or self.province(c) == province]
        counts = Counter(day(c["fecha_inicio_sintomas"]) for c, _ in cases)

        def window(of: list[tuple[dict, int]]) -> list[int]:
            return [
                d
                for c, d in of
                if self.publication - timedelta(days=85)
                <= day(c["fecha_inicio_sintomas"])
                <= self.publication - timedelta(days=30)
            ]

        delays = window(cases)
        if province is None or len(delays) < 100:
            delays = window(plausible)  # the country's distribution
        first = min(day(c["fecha_inicio_sintomas"]) for c, _ in plausible)
        curve = {}
        for offset in range((self.publication - first).days + 1):
            onset = first + timedelta(days=offset)
            confirmed, lag = counts[onset], (self.publication - onset).days
            if lag >= 30:
                p = Decimal(1)
            elif delays:
                p = Decimal(sum(d <= lag for d in delays)) / len(delays)
            else:
                p = None
            if p is not None and p >= Decimal("0.95"):
                curve[onset] = (confirmed, True, *[rounded(confirmed, 1)] * 3)
            elif p:
                n, c = len(delays), confirmed
                nowcast = Decimal(c) / p
                margin = Decimal("1.96") * ((c + 1) * (1 - p) / p**2 + c * c * (1 - p) / (n * p**3)).sqrt()
                curve[onset] = (
                    c,
                    False,
                    rounded(nowcast, 1),
                    rounded(max(c, nowcast - margin), 1),
                    rounded(nowcast + margin, 1),
                )
            else:
                curve[onset] = (confirmed, False, None, rounded(confirmed, 1), None)
        return curve

    def case_fatality_by_age_band(self) -> dict[str, tuple]:
        """age_band -> (confirmed, suspected, deaths, deaths / confirmed %, deaths / (confirmed + suspected) %)."""
        counts = Counter()
        for case in self.cases:
            status = case["clasificacion_resumen"]
            counts[age_band(case), status] += 1
            counts[age_band(case), "deaths"] += status == "Confirmado" and case["fallecido"] == "SI"
        table = {}
        for band in [b for b, _, _ in BANDS] + ["Unknown"]:
            confirmed, suspected, deaths = (counts[band, k] for k in ("Confirmado", "Sospechoso", "deaths"))
            table[band] = (
                confirmed,
                suspected,
                deaths,
                ratio(deaths, confirmed, 2, 100),
                ratio(deaths, confirmed + suspected, 2, 100),
            )
        return table
