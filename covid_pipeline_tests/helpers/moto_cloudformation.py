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
"""

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
    """The secret CloudFormation would create, through moto's Secrets Manager API; its ARN."""
    client = boto3.client("secretsmanager")
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
        Name=_resolve(properties["Name"], values),
        Description=properties.get("Description", ""),
        SecretString=password,
    )["ARN"]
    return {"Ref": arn}


def _create_user_pool(properties: dict, values: dict[str, str], created: dict) -> dict[str, str]:
    pool = boto3.client("cognito-idp").create_user_pool(
        PoolName=_resolve(properties["UserPoolName"], values),
        AdminCreateUserConfig={
            "AllowAdminCreateUserOnly": properties["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"]
        },
        UsernameAttributes=properties.get("UsernameAttributes", []),
    )["UserPool"]
    return {"Ref": pool["Id"], "Arn": pool["Arn"]}


def _create_user_pool_domain(properties: dict, values: dict[str, str], created: dict) -> dict[str, str]:
    domain = _resolve(properties["Domain"], values)
    pool = created[properties["UserPoolId"]["Ref"]]["Ref"]
    boto3.client("cognito-idp").create_user_pool_domain(Domain=domain, UserPoolId=pool)
    return {"Ref": domain}


def _create_user_pool_client(properties: dict, values: dict[str, str], created: dict) -> dict[str, str]:
    client = boto3.client("cognito-idp").create_user_pool_client(
        UserPoolId=created[properties["UserPoolId"]["Ref"]]["Ref"],
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
