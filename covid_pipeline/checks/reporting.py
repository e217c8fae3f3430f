"""Checks on the reporting marts' inputs: how many confirmed cases have an implausible notification delay.

reporting.notification_delay and the onset curves count the confirmed cases whose symptom onset lies 0 to 30 days
before their notification; the rest are left out there and counted here, so that what the marts leave out is seen.
"""

from collections.abc import Iterator

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, MetadataValue, multi_asset_check

from covid_pipeline.assets.reporting import key_of
from covid_pipeline.checks.query import fetch, share
from covid_pipeline.resources.warehouse import WarehouseResource

# An onset after the notification, or more than a month before it, is a typing error (or an old episode): a few
# percent of the real registry's dated cases (3.2% of the 2020-11-23 sample's). More says the dates are broken.
MAX_IMPLAUSIBLE_SHARE = 0.05


# One step named for what it checks (a single asset check's step would be named
# reporting__notification_delay_plausible_notification_delays).
@multi_asset_check(
    specs=[
        AssetCheckSpec(
            "plausible_notification_delays",
            asset=key_of("notification_delay"),
            description="confirmed cases whose symptom onset is after their notification or more than 30 days before it "
            f"(left out of the delay and onset marts): at most {MAX_IMPLAUSIBLE_SHARE:.0%} of those with both dates",
        )
    ],
    name="reporting_checks",
)
def plausible_notification_delays(warehouse: WarehouseResource) -> Iterator[AssetCheckResult]:
    counts = {name: int(value) for name, value in fetch(warehouse, "notification_delays.sql").items()}
    implausible = counts["onset_after_notification"] + counts["over_30_days"]
    implausible_share = share(implausible, implausible + counts["plausible"])
    yield AssetCheckResult(
        asset_key=key_of("notification_delay"),
        check_name="plausible_notification_delays",
        passed=implausible_share <= MAX_IMPLAUSIBLE_SHARE,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "implausible_delays": MetadataValue.int(implausible),
            "implausible_share": MetadataValue.float(round(implausible_share, 4)),
            **{name: MetadataValue.int(value) for name, value in counts.items()},
        },
    )


reporting_checks = [plausible_notification_delays]
