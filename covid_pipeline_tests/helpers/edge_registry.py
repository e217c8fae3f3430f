"""A small registry built with the edge cases of the epidemiological marts: delays of 0, 30, 31 and -1 days, no
onset date, discarded and suspected cases, a week of discarded cases only, an unknown province and age, a baby's age
in months, and recent onset days still being notified, with one province holding enough cases for a delay
distribution of its own."""

from datetime import date, timedelta

from covid_pipeline_tests.helpers.registry import row

PUBLISHED = date(2021, 3, 31)


def case(case_id, opened, province="06", onset=None, status="Confirmado", died=False, age="40", unit="Años"):
    return row(
        id_evento_caso=str(case_id),
        fecha_apertura=opened.isoformat(),
        fecha_inicio_sintomas=onset.isoformat() if onset else "",
        residencia_provincia_id=province,
        residencia_provincia_nombre={"06": "Buenos Aires", "02": "CABA", "14": "Córdoba"}.get(province, "X"),
        residencia_departamento_id="0",
        residencia_departamento_nombre="SIN ESPECIFICAR",
        clasificacion_resumen=status,
        fallecido="SI" if died else "NO",
        fecha_fallecimiento=(opened + timedelta(days=10)).isoformat() if died else "",
        edad=age,
        edad_años_meses=unit,
        fecha_internacion="",
        fecha_cui_intensivo="",
        fecha_diagnostico="",
        ultima_actualizacion=PUBLISHED.isoformat(),
    )


def edge_registry() -> list[dict]:
    """Published 2021-03-31. The delay distributions' window is the onsets of 2021-01-05 .. 2021-03-01."""
    cases, ids = [], iter(range(1, 10_000))
    # Buenos Aires: 120 cases in the window, delays 0..9 in turn: enough for a distribution of its own
    for n in range(120):
        onset = date(2021, 1, 5) + timedelta(days=n % 56)
        cases.append(case(next(ids), onset + timedelta(days=n % 10), "06", onset, age=str(n % 90)))
    # CABA: 20 cases in the window, each notified 2 days after onset: too few, it takes the country's distribution
    for n in range(20):
        onset = date(2021, 1, 10) + timedelta(days=n)
        cases.append(
            case(next(ids), onset + timedelta(days=2), "02", onset, died=n % 4 == 0, age=str(60 + n))
        )
    # the last days, still being notified: onsets 03-24 .. 03-31 in both provinces
    for n in range(16):
        onset = PUBLISHED - timedelta(days=n % 8)
        opened = min(onset + timedelta(days=n % 3), PUBLISHED)
        cases.append(case(next(ids), opened, "06" if n % 2 else "02", onset))
    march = date(2021, 3, 1)
    cases += [
        case(next(ids), march, "14", march - timedelta(days=30)),  # 30 days: plausible
        case(next(ids), march, "14", march - timedelta(days=31)),  # 31 days: implausible
        case(next(ids), march, "14", march + timedelta(days=1)),  # onset after notification: implausible
        case(next(ids), march, "14", march),  # same day: plausible
        case(next(ids), march, "14"),  # no onset date
        case(next(ids), march, "14", march, status="Descartado"),  # not confirmed: no delay
        case(next(ids), march, "14", status="Descartado"),
        case(next(ids), march + timedelta(days=7), "14", status="Descartado"),  # a week of discarded only
        case(
            next(ids), march, "14", status="Sospechoso", died=True, age="85"
        ),  # a suspected death is no death
        case(next(ids), march, "99", march - timedelta(days=3), age=""),  # province and age not recorded
        case(next(ids), march, "02", march - timedelta(days=2), age="7", unit="Meses"),  # a baby
    ]
    return cases
