"""Who may deploy, and what a deployment may do: the ci stack's two roles, their trust and their policies,
evaluated with IAM's semantics for given requests (helpers/iam_policy.py), since moto evaluates no IAM."""

import json
import re
from pathlib import Path

import cfnlint
import pytest

from covid_pipeline_tests.helpers.iam_policy import ACCOUNT, PARTITION, REGION, Template, allows
from covid_pipeline_tests.helpers.templates import template

OIDC = "token.actions.githubusercontent.com"
WEB_IDENTITY = "sts:AssumeRoleWithWebIdentity"


def role_arn(export: str) -> str:
    return f"arn:{PARTITION}:iam::{ACCOUNT}:role/covid/covid-cluster-{export.removesuffix('Arn')}-1AB2C3"


def cluster_exports() -> dict[str, str]:
    """What the cluster stack exports, as CloudFormation names them for environment `covid`."""
    exports = {"covid-ClusterName": "covid"}
    for output in template("cluster")["Outputs"].values():
        name = output.get("Export", {}).get("Name", {}).get("Fn::Sub", "")
        if name.endswith("RoleArn"):
            exports[name.replace("${EnvironmentName}", "covid")] = role_arn(name.split("-", 1)[1])
    return exports


def ci(**parameters: str) -> Template:
    given = {"GitHubRepository": "my-org/covid-pipeline", "GitHubOidcProviderArn": ""} | parameters
    return Template(template("ci"), given, cluster_exports())


def assumes(role: Template, subject: str, audience: str = "sts.amazonaws.com") -> bool:
    trust = role.statements("GitHubDeployRole", "AssumeRolePolicyDocument")
    context = {f"{OIDC}:aud": audience, f"{OIDC}:sub": subject}
    return allows(trust, WEB_IDENTITY, context=context, principal=("Federated", "GitHubOidcProvider.Ref"))


# --- The GitHub deploy role ------------------------------------------------------------------------


def test_the_deploy_role_trusts_both_subject_formats_of_its_repository_and_branch_only():
    """GitHub's subject for repositories created, renamed or transferred after 2026-06-18 carries the
    owner's and the repository's ids (repo:OWNER@ID/NAME@ID:...); older ones keep repo:OWNER/NAME:..."""
    role = ci()
    assert assumes(role, "repo:my-org/covid-pipeline:ref:refs/heads/main")
    assert assumes(role, "repo:my-org@123456/covid-pipeline@456789:ref:refs/heads/main")
    for foreign in (
        "repo:evil-org/covid-pipeline:ref:refs/heads/main",
        "repo:evil-org@1/covid-pipeline@2:ref:refs/heads/main",
        "repo:my-org/covid-pipeline-fork:ref:refs/heads/main",
        "repo:my-org@123456/covid-pipeline-fork@9:ref:refs/heads/main",
        "repo:my-org@123456/other@456789:ref:refs/heads/main",
        "repo:my-org/covid-pipeline:ref:refs/heads/feature",
        "repo:my-org@123456/covid-pipeline@456789:ref:refs/heads/main-next",
        "repo:my-org/covid-pipeline:pull_request",
        "repo:my-org/covid-pipeline:environment:production",
        "repo:my-org/covid-pipeline:ref:refs/tags/main",
    ):
        assert not assumes(role, foreign), foreign
    assert not assumes(
        role, "repo:my-org/covid-pipeline:ref:refs/heads/main", audience="https://github.com/my-org"
    )
    # The branch is a parameter of its own.
    assert assumes(ci(DeployBranch="release"), "repo:my-org@1/covid-pipeline@2:ref:refs/heads/release")
    assert not assumes(ci(DeployBranch="release"), "repo:my-org@1/covid-pipeline@2:ref:refs/heads/main")


def test_with_the_ids_given_only_the_immutable_subject_of_those_ids_is_trusted():
    """A deleted owner's or repository's name can be registered again; its ids cannot."""
    role = ci(GitHubOwnerId="123456", GitHubRepositoryId="456789")
    assert assumes(role, "repo:my-org@123456/covid-pipeline@456789:ref:refs/heads/main")
    for refused in (
        "repo:my-org/covid-pipeline:ref:refs/heads/main",  # the name alone: maybe a recycled name
        "repo:my-org@999999/covid-pipeline@456789:ref:refs/heads/main",
        "repo:my-org@123456/covid-pipeline@111111:ref:refs/heads/main",
        "repo:my-org@123456/covid-pipeline@456789:ref:refs/heads/other",
    ):
        assert not assumes(role, refused), refused


def test_only_the_subject_ids_may_be_wildcards():
    """StringLike makes `*` and `?` wildcards: no parameter may bring one into the condition."""
    parameters = template("ci")["Parameters"]
    for name in ("GitHubRepository", "DeployBranch", "GitHubOwnerId", "GitHubRepositoryId"):
        pattern = re.compile(parameters[name]["AllowedPattern"])
        assert not pattern.match("a*b") and not pattern.match("a?b"), name
    (statement,) = ci().statements("GitHubDeployRole", "AssumeRolePolicyDocument")
    subjects = statement["Condition"]["StringLike"][f"{OIDC}:sub"]
    assert [s.count("*") for s in subjects] == [0, 2] and not any("?" in s for s in subjects)


# --- The role CloudFormation uses for the services stack -------------------------------------------


def services_role() -> list[dict]:
    return ci().statements("ServicesStackRole")


def arn(kind: str, name: str) -> str:
    return f"arn:{PARTITION}:ecs:{REGION}:{ACCOUNT}:{kind}/{name}"


def test_only_cloudformation_acting_for_this_account_assumes_the_services_stack_role():
    trust = ci().statements("ServicesStackRole", "AssumeRolePolicyDocument")
    cloudformation = ("Service", "cloudformation.amazonaws.com")
    assert allows(trust, "sts:AssumeRole", context={"aws:SourceAccount": ACCOUNT}, principal=cloudformation)
    assert not allows(
        trust, "sts:AssumeRole", context={"aws:SourceAccount": "210987654321"}, principal=cloudformation
    )
    assert not allows(trust, "sts:AssumeRole", principal=cloudformation)  # no source account: refused
    assert not allows(
        trust,
        "sts:AssumeRole",
        context={"aws:SourceAccount": ACCOUNT},
        principal=("Service", "ecs-tasks.amazonaws.com"),
    )


def services_stack() -> dict:
    return template("services")["Resources"]


def of_type(kind: str) -> dict[str, dict]:
    return {name: r["Properties"] for name, r in services_stack().items() if r["Type"] == kind}


def test_the_services_stack_role_reaches_exactly_the_stacks_services_families_and_roles():
    statements = services_role()
    services = {props["ServiceName"] for props in of_type("AWS::ECS::Service").values()}
    families = {
        props["Family"]["Fn::Sub"].replace("${EnvironmentName}", "covid")
        for props in of_type("AWS::ECS::TaskDefinition").values()
    }
    service_families = {
        services_stack()[props["TaskDefinition"]["Ref"]]["Properties"]["Family"]["Fn::Sub"].replace(
            "${EnvironmentName}", "covid"
        )
        for props in of_type("AWS::ECS::Service").values()
    }
    assert "covid-init-database" not in families  # the init stack's (see below)
    # Its services, in this environment's cluster, each on a definition of a service family.
    for service in services:
        for family in service_families:
            context = {"ecs:task-definition": arn("task-definition", f"{family}:12")}
            for action in ("ecs:CreateService", "ecs:UpdateService"):
                assert allows(statements, action, arn("service", f"covid/{service}"), context)
        assert allows(
            statements, "ecs:UpdateService", arn("service", f"covid/{service}")
        )  # e.g. only a count
        assert allows(statements, "ecs:DeleteService", arn("service", f"covid/{service}"))
        assert allows(
            statements, "ecs:StopServiceDeployment", arn("service-deployment", f"covid/{service}/a1b2")
        )
        init = {"ecs:task-definition": arn("task-definition", "covid-init-database:3")}
        assert not allows(statements, "ecs:CreateService", arn("service", f"covid/{service}"), init)
        assert not allows(statements, "ecs:UpdateService", arn("service", f"covid/{service}"), init)
        assert not allows(statements, "ecs:UpdateService", arn("service", f"other/{service}"))
        assert not allows(statements, "ecs:DeleteService", arn("service", f"staging/{service}"))
    assert not allows(statements, "ecs:CreateService", arn("service", "covid/exfiltrate"))
    assert not allows(statements, "ecs:DeleteService", arn("service", "covid/someone-elses"))
    # Its task definition families, and no other.
    for family in families:
        assert allows(statements, "ecs:RegisterTaskDefinition", arn("task-definition", f"{family}:4"))
    assert not allows(statements, "ecs:RegisterTaskDefinition", arn("task-definition", "covid-exfiltrate:1"))
    assert not allows(statements, "ecs:RegisterTaskDefinition", arn("task-definition", "staging-webserver:1"))
    # Exactly the roles its task definitions name, and only to ECS tasks.
    named = {
        json.dumps(props[key])
        for props in of_type("AWS::ECS::TaskDefinition").values()
        for key in ("ExecutionRoleArn", "TaskRoleArn")
        if key in props
    }
    exports = cluster_exports()
    passed = {
        exports[json.loads(node)["Fn::ImportValue"]["Fn::Sub"].replace("${EnvironmentName}", "covid")]
        for node in named
    }
    for role in passed:
        assert allows(statements, "iam:PassRole", role, {"iam:PassedToService": "ecs-tasks.amazonaws.com"})
        assert allows(statements, "iam:GetRole", role)
        assert not allows(statements, "iam:PassRole", role, {"iam:PassedToService": "ec2.amazonaws.com"})
    others = {
        f"arn:aws:iam::{ACCOUNT}:role/covid/covid-bastion-BastionRole-9Z",
        f"arn:aws:iam::{ACCOUNT}:role/covid/admin",
    }
    for role in others | (set(exports.values()) - passed - {"covid"}):
        assert not allows(
            statements, "iam:PassRole", role, {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
        ), role


# The init task's execution role, as CloudFormation names it in the init stack of environment `covid`.
INIT_ROLE = f"arn:{PARTITION}:iam::{ACCOUNT}:role/covid/covid-init-InitDatabaseExecutionRole-4D5E6F"
INIT_FAMILY = arn("task-definition", "covid-init-database:3")


def test_a_push_to_main_cannot_reach_the_task_that_reads_the_master_secret():
    """The init task's definition and role live in the init stack, which only deploy.sh deploys with the
    operator's credentials: neither the workflow's role nor the role it hands CloudFormation may change that
    stack, register that family, pass that role or start that task."""
    workflow = ci().statements("GitHubDeployRole")
    stacks = f"arn:{PARTITION}:cloudformation:{REGION}:{ACCOUNT}:stack"
    assert allows(workflow, "cloudformation:CreateChangeSet", f"{stacks}/covid-services/1a2b")
    for action in ("cloudformation:CreateChangeSet", "cloudformation:ExecuteChangeSet"):
        assert not allows(workflow, action, f"{stacks}/covid-init/1a2b")
    services = services_role()
    for statements in (workflow, services):
        assert not allows(statements, "ecs:RegisterTaskDefinition", INIT_FAMILY)
        assert not allows(statements, "ecs:RunTask", INIT_FAMILY)
        for service in ("dagster-webserver", "covid-exfiltrate"):
            init = {"ecs:task-definition": INIT_FAMILY}
            assert not allows(statements, "ecs:CreateService", arn("service", f"covid/{service}"), init)
        assert not allows(
            statements, "iam:PassRole", INIT_ROLE, {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
        )
    # The init stack alone holds what reads the master secret; deploy.sh deploys it without the services' role.
    init = template("init")["Resources"]
    assert {init["InitDatabaseTaskDefinition"]["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0]} == {
        "InitDatabaseExecutionRole"
    }


@pytest.mark.parametrize("action", ["ecs:DeregisterTaskDefinition", "ecs:DescribeTaskDefinition"])
def test_only_actions_that_take_no_resource_are_granted_on_every_resource(action):
    """The Service Authorization Reference's resource types per action, as cfn-lint ships them."""
    policies = json.loads(
        (Path(cfnlint.__file__).parent / "data" / "AdditionalSpecs" / "Policies.json").read_text()
    )
    resource_types = {
        name.lower(): spec.get("Resources", []) for name, spec in policies["ecs"]["Actions"].items()
    }
    wildcard = {
        a
        for s in services_role()
        if s.get("Resource") == "*"
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert {a for a in wildcard if not resource_types[a.split(":")[1].lower()]} == wildcard
    assert action in wildcard and not resource_types[action.split(":")[1].lower()]
