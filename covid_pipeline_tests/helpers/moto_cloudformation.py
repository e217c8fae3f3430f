"""The deployment's templates as moto's CloudFormation server can create them.

moto (5.2) lacks a few things CloudFormation has. `for_moto` changes a template for exactly those,
and nothing else, so that every stack is still created with `create_stack` over HTTP:

1. `Fn::Cidr` is not implemented (network.yaml's subnets): it is replaced by the list CloudFormation
   computes (the first `count` subnets of `2**bits` addresses of the block), with the parameter
   values of that stack.
2. `Fn::ImportValue` of an `Fn::Sub` is handed on unevaluated (moto looks up an export named by a
   dict): the name is substituted with the stack's parameters first. The import itself stays.
3. `AWS::SecretsManager::Secret` and the Cognito user pool, its domain and client have no
   CloudFormation model in moto, which drops such a resource and fails on a `Fn::GetAtt` of it:
   each one whose Condition holds is created first through moto's own API for that service, with
   the template's properties, and each `Ref` / `Fn::GetAtt` of it becomes the value that API
   returned. Other types moto does not model are dropped by moto itself (it warns); what they do
   is asserted on the template, not here.
4. An `AWS::RDS::DBInstance`'s `DBParameterGroupName: !Ref ...` reaches moto's RDS model as the
   parameter group object instead of its name, and moto fails: the property is removed (the
   parameter group itself is still created; the link is asserted on the template).
5. In `Fn::Sub`, moto reads `${Master.Endpoint.Address}` as attribute `Endpoint` of `Master`: such a
   variable (an attribute name with a dot) is moved into Fn::Sub's variable map as the
   `Fn::GetAtt` CloudFormation evaluates it to.

`moto_gaps(template)` lists what `for_moto` would change, for the test to report.

Where moto accepts what AWS refuses and the deployment depends on the refusal, `make_strict` teaches
it the rule (each cited there): a failed resource rolls its stack back to ROLLBACK_COMPLETE, ECS
refuses a service on a target group with no load balancer and a cluster with capacity providers
before its service-linked role exists. It also mends three moto bugs the deployment meets: a DBInstance
gets its engine's port (moto: 3306 for all) as a string, an updated task definition keeps ECS's keys,
and a service created from a template keeps its load balancers.
"""

import contextlib
import ipaddress
import json
import re
from typing import Any

import boto3

SUB_VARIABLE = re.compile(r"\$\{([A-Za-z0-9_:.]+)\}")
DOTTED_ATTRIBUTE = re.compile(r"\$\{([A-Za-z0-9]+)\.([A-Za-z0-9]+\.[A-Za-z0-9.]+)\}")


def walk(node: Any):
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def moto_gaps(template: dict) -> dict[str, int]:
    """How many of each change `for_moto` makes to this template."""
    nodes = list(walk(template))
    return {
        "Fn::Cidr": sum(isinstance(n, dict) and "Fn::Cidr" in n for n in nodes),
        "Fn::ImportValue of Fn::Sub": sum(
            isinstance(n, dict) and isinstance(n.get("Fn::ImportValue"), dict) for n in nodes
        ),
        "created through the service's API": sum(
            resource["Type"] in CREATORS for resource in template["Resources"].values()
        ),
        "DBParameterGroupName of a DBInstance": len(_instances_with_parameter_group(template)),
        "Fn::Sub of a dotted attribute": sum(
            isinstance(n, dict)
            and isinstance(n.get("Fn::Sub"), str)
            and bool(DOTTED_ATTRIBUTE.search(n["Fn::Sub"]))
            for n in nodes
        ),
    }


def _instances_with_parameter_group(template: dict) -> list[dict]:
    return [
        resource["Properties"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::RDS::DBInstance"
        and isinstance(resource["Properties"].get("DBParameterGroupName"), dict)
    ]


def cidrs(block: str, count: int, bits: int) -> list[str]:
    network = ipaddress.ip_network(block)
    return [str(subnet) for subnet in network.subnets(new_prefix=network.max_prefixlen - bits)][:count]


def substitute(text: str, values: dict[str, str]) -> str:
    return SUB_VARIABLE.sub(lambda match: values[match.group(1)], text)


def _resolve(node: Any, values: dict[str, str]) -> Any:
    """A scalar from literals, Refs to parameters and Subs of them (what Fn::Cidr's arguments are)."""
    if isinstance(node, dict) and "Ref" in node:
        return values[node["Ref"]]
    if isinstance(node, dict) and "Fn::Sub" in node:
        return substitute(node["Fn::Sub"], values)
    return node


def _rewrite(node: Any, values: dict[str, str], created_by_api: dict[str, str]) -> Any:
    if isinstance(node, dict):
        if set(node) == {"Fn::Cidr"}:
            block, count, bits = (_resolve(arg, values) for arg in node["Fn::Cidr"])
            return cidrs(block, int(count), int(bits))
        if set(node) == {"Fn::ImportValue"} and isinstance(node["Fn::ImportValue"], dict):
            return {"Fn::ImportValue": _resolve(node["Fn::ImportValue"], values)}
        if set(node) == {"Ref"} and node["Ref"] in created_by_api:
            return created_by_api[node["Ref"]]["Ref"]
        if set(node) == {"Fn::GetAtt"} and node["Fn::GetAtt"][0] in created_by_api:
            name, attribute = node["Fn::GetAtt"]
            return created_by_api[name][attribute]
        if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
            text = node["Fn::Sub"]
            for name, created in created_by_api.items():
                text = text.replace("${" + name + "}", created["Ref"])
            attributes = {
                f"{resource}{attribute.replace('.', '')}": {"Fn::GetAtt": [resource, attribute]}
                for resource, attribute in DOTTED_ATTRIBUTE.findall(text)
            }
            if attributes:
                text = DOTTED_ATTRIBUTE.sub(
                    lambda m: "${" + m.group(1) + m.group(2).replace(".", "") + "}", text
                )
                return {"Fn::Sub": [text, attributes]}
            return {"Fn::Sub": text}
        return {key: _rewrite(value, values, created_by_api) for key, value in node.items()}
    if isinstance(node, list):
        return [_rewrite(value, values, created_by_api) for value in node]
    return node


def _create_secret(properties: dict, values: dict[str, str], created: dict) -> dict[str, str]:
    """The secret CloudFormation would create, through moto's Secrets Manager API; its ARN. One that
    exists already is the stack's own, from its creation (the template is changed again on update)."""
    client = boto3.client("secretsmanager")
    name = _resolve(properties["Name"], values)
    try:
        return {"Ref": client.describe_secret(SecretId=name)["ARN"]}
    except client.exceptions.ResourceNotFoundException:
        pass
    generate = properties.get("GenerateSecretString", {})
    password = client.get_random_password(
        PasswordLength=generate.get("PasswordLength", 32),
        ExcludeCharacters=generate.get("ExcludeCharacters", ""),
        ExcludePunctuation=generate.get("ExcludePunctuation", False),
    )["RandomPassword"]
    if "SecretStringTemplate" in generate:
        secret = json.loads(_resolve(generate["SecretStringTemplate"], values))
        secret[generate["GenerateStringKey"]] = password
        password = json.dumps(secret)
    arn = client.create_secret(
        Name=name,
        Description=properties.get("Description", ""),
        SecretString=password,
    )["ARN"]
    return {"Ref": arn}


def _create_user_pool(properties: dict, values: dict[str, str], created: dict) -> dict[str, str]:
    client = boto3.client("cognito-idp")
    name = _resolve(properties["UserPoolName"], values)
    for pool in client.list_user_pools(MaxResults=60)["UserPools"]:  # the stack's own, on update
        if pool["Name"] == name:
            pool = client.describe_user_pool(UserPoolId=pool["Id"])["UserPool"]
            return {"Ref": pool["Id"], "Arn": pool["Arn"]}
    pool = client.create_user_pool(
        PoolName=name,
        AdminCreateUserConfig={
            "AllowAdminCreateUserOnly": properties["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"]
        },
        UsernameAttributes=properties.get("UsernameAttributes", []),
    )["UserPool"]
    return {"Ref": pool["Id"], "Arn": pool["Arn"]}


def _create_user_pool_domain(properties: dict, values: dict[str, str], created: dict) -> dict[str, str]:
    domain = _resolve(properties["Domain"], values)
    pool = created[properties["UserPoolId"]["Ref"]]["Ref"]
    client = boto3.client("cognito-idp")
    if not client.describe_user_pool_domain(Domain=domain)["DomainDescription"]:
        client.create_user_pool_domain(Domain=domain, UserPoolId=pool)
    return {"Ref": domain}


def _create_user_pool_client(properties: dict, values: dict[str, str], created: dict) -> dict[str, str]:
    pool = created[properties["UserPoolId"]["Ref"]]["Ref"]
    cognito = boto3.client("cognito-idp")
    for existing in cognito.list_user_pool_clients(UserPoolId=pool, MaxResults=60)["UserPoolClients"]:
        if existing["ClientName"] == properties["ClientName"]:
            return {"Ref": existing["ClientId"]}
    client = cognito.create_user_pool_client(
        UserPoolId=pool,
        ClientName=properties["ClientName"],
        GenerateSecret=properties["GenerateSecret"],
        AllowedOAuthFlows=properties["AllowedOAuthFlows"],
        AllowedOAuthScopes=properties["AllowedOAuthScopes"],
        AllowedOAuthFlowsUserPoolClient=properties["AllowedOAuthFlowsUserPoolClient"],
        CallbackURLs=[_resolve(url, values) for url in properties["CallbackURLs"]],
    )["UserPoolClient"]
    return {"Ref": client["ClientId"]}


# In dependency order: a domain and a client name their user pool.
CREATORS = {
    "AWS::SecretsManager::Secret": _create_secret,
    "AWS::Cognito::UserPool": _create_user_pool,
    "AWS::Cognito::UserPoolDomain": _create_user_pool_domain,
    "AWS::Cognito::UserPoolClient": _create_user_pool_client,
}


def condition_holds(template: dict, name: str | None, values: dict[str, str]) -> bool:
    """Evaluate a named condition (Fn::Equals / Not / And / Or / Condition over parameters)."""
    if name is None:
        return True

    def evaluate(node: Any) -> Any:
        if isinstance(node, dict):
            ((function, argument),) = node.items()
            if function == "Fn::Equals":
                left, right = (str(_resolve(value, values)) for value in argument)
                return left == right
            if function == "Fn::Not":
                return not evaluate(argument[0])
            if function == "Fn::And":
                return all(evaluate(value) for value in argument)
            if function == "Fn::Or":
                return any(evaluate(value) for value in argument)
            if function == "Condition":
                return evaluate(template["Conditions"][argument])
        raise ValueError(f"cannot evaluate condition {node!r}")

    return evaluate(template["Conditions"][name])


def for_moto(template: dict, parameters: dict[str, str], region: str = "us-east-1") -> dict:
    """`template` (decoded, e.g. by cfn-lint) changed as the module docstring says, for `create_stack`."""
    values = {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}
    values.update(parameters)
    values.update(
        {
            "AWS::Region": region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::AccountId": boto3.client("sts").get_caller_identity()["Account"],
        }
    )
    template = json.loads(json.dumps(template, default=str))
    created_by_api: dict[str, dict[str, str]] = {}
    for kind, create in CREATORS.items():
        for name, resource in list(template["Resources"].items()):
            if resource["Type"] == kind:
                if condition_holds(template, resource.get("Condition"), values):
                    created_by_api[name] = create(resource["Properties"], values, created_by_api)
                del template["Resources"][name]
    for properties in _instances_with_parameter_group(template):
        del properties["DBParameterGroupName"]
    return _rewrite(template, values, created_by_api)


# --- moto as strict as AWS where the deployment depends on it -------------------------------------


class ResourceFailed(Exception):
    """A resource CloudFormation could not create: the stack rolls back (see `make_strict`)."""

    def __init__(self, logical_id: str, resource_type: str, reason: str):
        super().__init__(f"{logical_id} ({resource_type}): {reason}")
        self.logical_id, self.resource_type, self.reason = logical_id, resource_type, reason


def _handler_message(error: Exception) -> str:
    """How CloudFormation reports a resource handler's error in the stack's events."""
    code = getattr(error, "error_type", type(error).__name__)
    message = getattr(error, "message", None) or str(error)
    return f'Resource handler returned message: "{message}" (Error Code: {code})'


def _target_groups_without_load_balancer(load_balancers, account_id: str, region: str) -> list[str]:
    from moto.elbv2.models import elbv2_backends

    target_groups = elbv2_backends[account_id][region].target_groups
    arns = [
        entry.get("TargetGroupArn") or entry.get("targetGroupArn")
        for entry in load_balancers or []
        if isinstance(entry, dict)
    ]
    return [arn for arn in arns if arn in target_groups and not target_groups[arn].load_balancer_arns]


def _refuse_target_group_without_load_balancer(load_balancers, account_id: str, region: str) -> None:
    """ECS CreateService refuses a target group that no listener (rule) of a load balancer forwards
    to: "The target group with targetGroupArn ... does not have an associated load balancer."
    (InvalidParameterException; https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CreateService.html,
    loadBalancers; https://docs.aws.amazon.com/AmazonECS/latest/developerguide/alb.html). moto accepts it."""
    from moto.ecs.exceptions import InvalidParameterException

    for arn in _target_groups_without_load_balancer(load_balancers, account_id, region):
        raise InvalidParameterException(
            f"The target group with targetGroupArn {arn} does not have an associated load balancer."
        )


def _refuse_cluster_without_service_linked_role(properties: dict, account_id: str) -> None:
    """CloudFormation's CreateCluster with capacity providers fails while the account has no ECS
    service-linked role: "Unable to assume the service linked role. Please verify that the ECS
    service linked role exists." (InvalidParameterException;
    https://docs.aws.amazon.com/AmazonECS/latest/developerguide/using-service-linked-roles.html,
    https://github.com/aws-cloudformation/cloudformation-coverage-roadmap/issues/818). moto accepts it."""
    from moto.ecs.exceptions import InvalidParameterException
    from moto.iam.models import iam_backends

    if not properties.get("CapacityProviders"):
        return
    # (moto keeps the service a role is linked to in `_linked_service`, iam/models.py)
    linked = {
        getattr(role, "_linked_service", None) for role in iam_backends[account_id]["aws"].roles.values()
    }
    if "ecs.amazonaws.com" not in linked:
        raise InvalidParameterException(
            "CreateCluster Invalid Request: Unable to assume the service linked role. "
            "Please verify that the ECS service linked role exists."
        )


def make_strict() -> None:
    """Teach moto, in this process (the one serving moto's API), to refuse what AWS refuses here:

    - a resource that fails to create makes its stack roll back to ROLLBACK_COMPLETE, with a
      CREATE_FAILED event naming the resource and the reason (moto answers the API call with an
      error and leaves the stack half made; https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/view-stack-events.html);
    - UpdateStack of a stack in ROLLBACK_COMPLETE is refused ("... is in ROLLBACK_COMPLETE state and
      can not be updated", https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/troubleshooting.html);
    - an ECS service on a target group with no load balancer (`_refuse_target_group_without_load_balancer`);
    - an ECS cluster with capacity providers before the service-linked role exists
      (`_refuse_cluster_without_service_linked_role`);
    - a second CreateServiceLinkedRole answers as IAM does: InvalidInput "Service role name ... has
      been taken in this account, please try a different suffix."
      (https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateServiceLinkedRole.html).
    Idempotent."""
    from moto.cloudformation import models as cloudformation
    from moto.cloudformation import parsing
    from moto.cloudformation.exceptions import ValidationError
    from moto.core.utils import pascal_to_camelcase, remap_nested_keys
    from moto.ecs import models as ecs
    from moto.iam import models as iam
    from moto.iam.exceptions import EntityAlreadyExists, InvalidInput

    if getattr(parsing, "_made_strict", False):
        return
    parsing._made_strict = True

    create_resource = parsing.parse_and_create_resource

    def parse_and_create_resource(logical_id, resource_json, resources_map, account_id, region_name):
        try:
            return create_resource(logical_id, resource_json, resources_map, account_id, region_name)
        except ResourceFailed:
            raise
        except Exception as error:
            raise ResourceFailed(
                logical_id, resource_json.get("Type", ""), _handler_message(error)
            ) from error

    parsing.parse_and_create_resource = parse_and_create_resource

    def event(stack, logical_id: str, resource_type: str, status: str, reason: str | None = None) -> None:
        stack.events.append(
            cloudformation.Event(
                stack.stack_id, stack.name, logical_id, "", resource_type, status, reason, None
            )
        )

    def roll_back(backend, stack, failure: ResourceFailed) -> None:
        event(stack, failure.logical_id, failure.resource_type, "CREATE_FAILED", failure.reason)
        stack.status = "ROLLBACK_IN_PROGRESS"
        event(
            stack,
            stack.name,
            "AWS::CloudFormation::Stack",
            "ROLLBACK_IN_PROGRESS",
            f"The following resource(s) failed to create: [{failure.logical_id}]. Rollback requested by user.",
        )
        with contextlib.suppress(Exception):  # what moto cannot delete stays: rolled back all the same
            stack.resource_map.delete()
        for name in [
            name for name, export in backend.exports.items() if export.exporting_stack_id == stack.stack_id
        ]:
            del backend.exports[name]
        stack.status = "ROLLBACK_COMPLETE"
        event(stack, stack.name, "AWS::CloudFormation::Stack", "ROLLBACK_COMPLETE")

    create_stack = cloudformation.CloudFormationBackend.create_stack

    # moto creates resources while it reads the outputs, before `create_resources`: the whole call.
    def create_or_roll_back(backend, name, *args, **kwargs):
        try:
            return create_stack(backend, name, *args, **kwargs)
        except ResourceFailed as failure:
            (stack,) = [
                s for s in backend.stacks.values() if s.name == name and s.status != "DELETE_COMPLETE"
            ]
            roll_back(backend, stack, failure)
            return stack

    cloudformation.CloudFormationBackend.create_stack = create_or_roll_back

    update_stack = cloudformation.CloudFormationBackend.update_stack

    def refuse_rolled_back_update(backend, name, *args, **kwargs):
        for stack in backend.stacks.values():
            if name in (stack.name, stack.stack_id) and stack.status == "ROLLBACK_COMPLETE":
                raise ValidationError(
                    stack.stack_id,
                    message=f"Stack:{stack.stack_id} is in ROLLBACK_COMPLETE state and can not be updated.",
                )
        return update_stack(backend, name, *args, **kwargs)

    cloudformation.CloudFormationBackend.update_stack = refuse_rolled_back_update

    create_service_from_template = ecs.Service.create_from_cloudformation_json.__func__

    def service_from_template(cls, name, cloudformation_json, account_id, region_name, **kwargs):
        """Refused on a target group without load balancer; created with its LoadBalancers (moto's
        template path drops them: "TODO: LoadBalancers", ecs/models.py), as DescribeServices shows them."""
        properties = cloudformation_json["Properties"]
        _refuse_target_group_without_load_balancer(properties.get("LoadBalancers"), account_id, region_name)
        service = create_service_from_template(
            cls, name, cloudformation_json, account_id, region_name, **kwargs
        )
        service.load_balancers = remap_nested_keys(properties.get("LoadBalancers") or [], pascal_to_camelcase)
        return service

    ecs.Service.create_from_cloudformation_json = classmethod(service_from_template)

    create_service = ecs.EC2ContainerServiceBackend.create_service

    def service(backend, cluster_str, service_name, desired_count, *args, **kwargs):
        load_balancers = kwargs.get("load_balancers") or (args[1] if len(args) > 1 else None)
        _refuse_target_group_without_load_balancer(load_balancers, backend.account_id, backend.region_name)
        return create_service(backend, cluster_str, service_name, desired_count, *args, **kwargs)

    ecs.EC2ContainerServiceBackend.create_service = service

    create_cluster_from_template = ecs.Cluster.create_from_cloudformation_json.__func__

    def cluster_from_template(cls, name, cloudformation_json, account_id, region_name, **kwargs):
        _refuse_cluster_without_service_linked_role(cloudformation_json.get("Properties", {}), account_id)
        return create_cluster_from_template(cls, name, cloudformation_json, account_id, region_name, **kwargs)

    ecs.Cluster.create_from_cloudformation_json = classmethod(cluster_from_template)

    create_linked_role = iam.IAMBackend.create_service_linked_role

    def linked_role(backend, service_name, description, suffix):
        try:
            return create_linked_role(backend, service_name, description, suffix)
        except EntityAlreadyExists as taken:  # moto: "Role with name ... already exists."
            name = taken.message.removeprefix("Role with name ").removesuffix(" already exists.")
            raise InvalidInput(
                f"Service role name {name} has been taken in this account, please try a different suffix."
            ) from taken

    iam.IAMBackend.create_service_linked_role = linked_role

    from moto.rds import models as rds

    create_instance_from_template = rds.DBInstance.create_from_cloudformation_json.__func__

    def instance_on_engines_port(cls, name, cloudformation_json, account_id, region_name, **kwargs):
        """A DBInstance without Port listens on its engine's default (PostgreSQL: 5432), a read
        replica on its source's (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-rds-dbinstance.html,
        Port); moto's template path gives every engine MySQL's 3306."""
        properties = cloudformation_json["Properties"]
        if "Port" not in properties:
            source = properties.get("SourceDBInstanceIdentifier")
            if source:
                port = rds.rds_backends[account_id][region_name].describe_db_instances(source)[0].port
            else:
                port = rds.DBInstance.default_port(properties.get("Engine", ""))
            cloudformation_json = {**cloudformation_json, "Properties": {**properties, "Port": port}}
        return create_instance_from_template(
            cls, name, cloudformation_json, account_id, region_name, **kwargs
        )

    rds.DBInstance.create_from_cloudformation_json = classmethod(instance_on_engines_port)

    attribute = rds.DBInstance.get_cfn_attribute

    def attribute_as_cloudformation_gives_it(instance, name):
        """Fn::GetAtt of a DBInstance's Endpoint.Port is a string (moto: an int, which an SSM
        parameter then holds as a number)."""
        value = attribute(instance, name)
        return str(value) if name == "Endpoint.Port" else value

    rds.DBInstance.get_cfn_attribute = attribute_as_cloudformation_gives_it

    update_definition_from_template = ecs.TaskDefinition.update_from_cloudformation_json.__func__

    def definition_updated_as_created(cls, **kwargs):
        """An updated task definition's containers in ECS's own (camelCase) keys, as moto's create
        path registers them; its update path registers the template's PascalCase keys, which
        DescribeTaskDefinition then drops."""
        template = kwargs["cloudformation_json"]
        properties = template["Properties"]
        containers = remap_nested_keys(properties.get("ContainerDefinitions", []), pascal_to_camelcase)
        kwargs["cloudformation_json"] = {
            **template,
            "Properties": {**properties, "ContainerDefinitions": containers},
        }
        return update_definition_from_template(cls, **kwargs)

    ecs.TaskDefinition.update_from_cloudformation_json = classmethod(definition_updated_as_created)
