"""Metabase in the AWS deployment: set up by the deployment before anyone can claim it, served only over HTTPS
(through the bastion otherwise), and reading its own database over verified TLS."""

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from covid_pipeline_tests.helpers.iam_policy import Template
from covid_pipeline_tests.helpers.metabase import FakeMetabase
from covid_pipeline_tests.helpers.templates import template

ROOT = Path(__file__).resolve().parents[1]


def containers() -> dict[str, dict]:
    definition = template("services")["Resources"]["MetabaseTaskDefinition"]["Properties"]
    return {c["Name"]: c for c in definition["ContainerDefinitions"]}


def secrets_of(container: dict) -> dict[str, str]:
    return {
        s["Name"]: s["ValueFrom"]["Fn::Sub"][0]
        + "@"
        + s["ValueFrom"]["Fn::Sub"][1]["Secret"]["Fn::ImportValue"]["Fn::Sub"]
        for s in container["Secrets"]
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_setup_container_makes_the_deployments_admin_metabases_first_user_before_it_is_served():
    setup = containers()["setup"]
    assert setup["Essential"] is True  # a Metabase claimed by someone else stops the task
    assert setup["DependsOn"] == [{"ContainerName": "metabase", "Condition": "START"}]
    assert secrets_of(setup) == {
        "METABASE_ADMIN_EMAIL": "${Secret}:username::@${EnvironmentName}-MetabaseAdminSecretArn",
        "METABASE_ADMIN_PASSWORD": "${Secret}:password::@${EnvironmentName}-MetabaseAdminSecretArn",
    }
    # The load balancer's health check is the readiness the setup container serves.
    (ready_port,) = [mapping["ContainerPort"] for mapping in setup["PortMappings"]]
    group = template("cluster")["Resources"]["MetabaseTargetGroup"]["Properties"]
    assert (group["HealthCheckPort"], group["HealthCheckPath"]) == (str(ready_port), "/ready")
    # Metabase's execution role may read the admin's secret, which has a digit for Metabase's password rule.
    execution = template("cluster")["Resources"]["MetabaseExecutionRole"]["Properties"]
    assert "${EnvironmentName}-MetabaseAdminSecretArn" in str(execution["Policies"])
    secret = template("database")["Resources"]["MetabaseAdminSecret"]
    assert secret["DeletionPolicy"] == "Retain"  # its user lives on in the master's final snapshot
    assert secret["Properties"]["GenerateSecretString"]["RequireEachIncludedType"] is True
    # The container's own command, against a Metabase nobody has set up yet, with the variables ECS gives it.
    command = setup["Command"]
    assert command[:3] == ["covid-pipeline", "metabase", "setup"]
    with FakeMetabase(set_up=False) as fake:
        port = free_port()
        arguments = [
            fake.url if a == "http://localhost:3000" else str(port) if a == str(ready_port) else a
            for a in command
        ]
        environment = os.environ | {
            "METABASE_ADMIN_EMAIL": "admin@covid.example",
            "METABASE_ADMIN_PASSWORD": "Gen3rated-pw",
        }
        fake.initializing = True  # Metabase migrating its database: nothing is served, not even /ready
        process = subprocess.Popen(
            [sys.executable, "-m", "covid_pipeline.cli", *arguments[1:]],
            env=environment,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(1.5)
            assert process.poll() is None and fake.users == {}
            with pytest.raises(requests.ConnectionError):
                requests.get(f"http://127.0.0.1:{port}/ready", timeout=2)
            fake.initializing = False
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if requests.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    time.sleep(0.3)
            else:
                pytest.fail("the setup container never answered /ready")
            assert fake.users == {"admin@covid.example": "Gen3rated-pw"}
            assert fake.sessions == {}  # it logged out of the session the setup opened
        finally:
            process.kill()
            process.wait()


def listeners(certificate: str) -> list[tuple[str, list, list]]:
    """(listener, conditions, actions) of each default action and rule the load balancer has, as CloudFormation
    resolves the cluster stack with or without a certificate."""
    stack = template("cluster")
    resolved = Template(
        stack, {"CertificateArn": certificate, "DomainName": "covid.example.org" if certificate else ""}
    )
    found = []
    for name, resource in stack["Resources"].items():
        if "Condition" in resource and not resolved.conditions[resource["Condition"]]:
            continue
        properties = resolved.resolve(resource["Properties"])
        if resource["Type"] == "AWS::ElasticLoadBalancingV2::Listener":
            found.append((name, [], properties["DefaultActions"]))
        elif resource["Type"] == "AWS::ElasticLoadBalancingV2::ListenerRule":
            found.append(
                (
                    properties["ListenerArn"].removesuffix(".Ref"),
                    properties["Conditions"],
                    properties["Actions"],
                )
            )
    return found


def forwards_to_metabase(actions: list) -> bool:
    return any(a.get("TargetGroupArn") == "MetabaseTargetGroup.Ref" for a in actions)


def test_without_a_certificate_no_request_reaches_metabase_and_with_one_only_https_does():
    without = listeners("")
    assert {name for name, _, _ in without} == {"HttpListener"}
    (default,) = [actions for name, conditions, actions in without if not conditions]
    assert default[0]["Type"] == "fixed-response" and default[0]["FixedResponseConfig"]["StatusCode"] == "403"
    assert not any(forwards_to_metabase(actions) for _, _, actions in without)  # not even by a rule
    certificate = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
    with_https = listeners(certificate)
    http_default = [a for name, c, a in with_https if name == "HttpListener" and not c]
    assert http_default == [
        [
            {
                "Type": "redirect",
                "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"},
            }
        ]
    ]
    assert not any(forwards_to_metabase(a) for name, _, a in with_https if name == "HttpListener")
    assert any(forwards_to_metabase(a) for name, c, a in with_https if name == "HttpsListener" and not c)


def attached_services(https: str) -> dict[str, dict]:
    """Each service's load balancer settings as CloudFormation resolves the services stack (deploy.sh gives
    LoadBalancerHttps from the cluster stack)."""
    stack = template("services")
    resolved = Template(stack, {"LoadBalancerHttps": https, "ImageTag": "abc"})
    found = {}
    for resource in stack["Resources"].values():
        if resource["Type"] == "AWS::ECS::Service":
            properties = resolved.resolve(resource["Properties"])
            found[properties["ServiceName"]] = {
                key: properties[key]
                for key in ("LoadBalancers", "HealthCheckGracePeriodSeconds")
                if key in properties
            }
    return found


def test_the_services_are_attached_to_the_load_balancer_only_where_a_listener_forwards_to_them():
    """Without a certificate no listener forwards to either target group, which ECS refuses to attach a service
    to: the webserver and Metabase both run unattached (reached through the bastion), and Metabase's setup
    container still claims it first. With HTTPS both are attached, Metabase behind its readiness check."""
    assert attached_services("false") == {"dagster-webserver": {}, "dagster-daemon": {}, "metabase": {}}
    attached = attached_services("true")
    assert attached["dagster-daemon"] == {}
    for service, container, port, group in (
        ("dagster-webserver", "webserver", 3000, "DagsterTargetGroupArn"),
        ("metabase", "metabase", 3000, "MetabaseTargetGroupArn"),
    ):
        (balancer,) = attached[service]["LoadBalancers"]
        assert (balancer["ContainerName"], balancer["ContainerPort"]) == (container, port)
        assert balancer["TargetGroupArn"] == f"import:covid-{group}"
        assert attached[service]["HealthCheckGracePeriodSeconds"] > 0


def rules(kind: str) -> list[dict]:
    return [
        r["Properties"]
        for r in template("network")["Resources"].values()
        if r["Type"] == f"AWS::EC2::SecurityGroup{kind}"
    ]


def test_the_bastion_reaches_metabase_and_the_load_balancer_its_readiness_check():
    def allowed(source: str, port: int) -> bool:
        out = any(
            r["GroupId"] == {"Ref": source}
            and r["DestinationSecurityGroupId"] == {"Ref": "MetabaseSecurityGroup"}
            and r["FromPort"] <= port <= r["ToPort"]
            for r in rules("Egress")
            if "DestinationSecurityGroupId" in r
        )
        into = any(
            r["GroupId"] == {"Ref": "MetabaseSecurityGroup"}
            and r.get("SourceSecurityGroupId") == {"Ref": source}
            and r["FromPort"] <= port <= r["ToPort"]
            for r in rules("Ingress")
        )
        return out and into

    assert allowed("BastionSecurityGroup", 3000) and not allowed("BastionSecurityGroup", 3001)
    assert allowed("AlbSecurityGroup", 3000) and allowed("AlbSecurityGroup", 3001)
    assert not allowed("RunTaskSecurityGroup", 3000)


def test_metabase_verifies_its_database_with_the_bundle_the_pipeline_image_lends_it():
    task = containers()
    bundle_dir = "/opt/covid"
    assert re.search(r'^VOLUME \["/opt/covid"\]$', (ROOT / "docker" / "Dockerfile").read_text(), re.MULTILINE)
    assert task["rds-ca"]["MountPoints"] == [{"SourceVolume": "rds-ca", "ContainerPath": bundle_dir}]
    assert task["rds-ca"]["Image"]["Fn::Sub"][0] == "${Repository}:${ImageTag}"  # the pipeline image
    metabase = task["metabase"]
    assert metabase["MountPoints"] == [
        {"SourceVolume": "rds-ca", "ContainerPath": bundle_dir, "ReadOnly": True}
    ]
    assert {"ContainerName": "rds-ca", "Condition": "SUCCESS"} in metabase["DependsOn"]
    uri = template("database")["Resources"]["MetabaseDatabaseUriParameter"]["Properties"]["Value"]["Fn::Sub"]
    assert uri.endswith(f"sslmode=verify-full&sslrootcert={bundle_dir}/rds-ca-bundle.pem")
