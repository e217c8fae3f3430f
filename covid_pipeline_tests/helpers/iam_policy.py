"""A template's IAM policies read the way AWS reads them, where moto (which evaluates no IAM) cannot.

- `resolve` evaluates the intrinsic functions a policy uses (Ref, AWS::NoValue, Fn::Sub, Fn::If, Fn::Select,
  Fn::Split, Fn::ImportValue, Fn::GetAtt and the condition functions) for given parameters and exports, as
  CloudFormation does: https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/intrinsic-function-reference.html
- `allows` decides whether a policy's Allow statements grant one request: action, resource and the
  request's context keys, with IAM's semantics (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html):
  `*` matches any run of characters and `?` one character in StringLike/ArnLike, Resource and Action;
  several values of one key are ORed, several keys and several operators ANDed; a key missing from the
  request fails its operator unless the operator ends in IfExists.
"""

import re
from collections.abc import Mapping

ACCOUNT, REGION, PARTITION = "123456789012", "us-east-1", "aws"
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": PARTITION,
    "AWS::URLSuffix": "amazonaws.com",
}
PLACEHOLDER = re.compile(r"\$\{([^}!]+)\}")
NO_VALUE = object()  # `Ref: AWS::NoValue`: the property (or list item) is left out


class Template:
    def __init__(self, template: dict, parameters: Mapping[str, str], exports: Mapping[str, str] = ()):
        declared = template.get("Parameters", {})
        self.parameters = {name: str(spec.get("Default", "")) for name, spec in declared.items()}
        self.parameters |= dict(parameters)
        self.exports = dict(exports)
        self.template = template
        self.conditions = {}
        for name, spec in template.get("Conditions", {}).items():  # in order: one may use an earlier one
            self.conditions[name] = self.resolve(spec)

    def resolve(self, node, variables: Mapping[str, str] = ()):
        variables = dict(variables)
        if isinstance(node, list):
            return [item for item in (self.resolve(item, variables) for item in node) if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) != 1 or not next(iter(node)).startswith(("Fn::", "Ref", "Condition")):
            resolved = {key: self.resolve(value, variables) for key, value in node.items()}
            return {key: value for key, value in resolved.items() if value is not NO_VALUE}
        ((function, argument),) = node.items()
        if function == "Ref":
            return NO_VALUE if argument == "AWS::NoValue" else self._name(argument)
        if function == "Condition":
            return self.conditions[argument]
        if function == "Fn::Sub":
            text, extra = (argument, {}) if isinstance(argument, str) else argument
            extra = {key: self.resolve(value, variables) for key, value in extra.items()}
            return PLACEHOLDER.sub(lambda m: str(extra.get(m.group(1)) or self._name(m.group(1))), text)
        if function == "Fn::If":
            condition, when_true, when_false = argument
            return self.resolve(when_true if self.conditions[condition] else when_false, variables)
        if function == "Fn::Select":
            index, items = argument
            return self.resolve(items, variables)[int(self.resolve(index, variables))]
        if function == "Fn::Split":
            separator, text = argument
            return self.resolve(text, variables).split(separator)
        if function == "Fn::ImportValue":
            name = self.resolve(argument, variables)
            return self.exports.get(name, f"import:{name}")
        if function == "Fn::GetAtt":
            resource, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return f"{resource}.{attribute}"
        if function == "Fn::Equals":
            left, right = self.resolve(argument, variables)
            return left == right
        if function == "Fn::Not":
            return not self.resolve(argument[0], variables)
        if function == "Fn::And":
            return all(self.resolve(argument, variables))
        if function == "Fn::Or":
            return any(self.resolve(argument, variables))
        raise NotImplementedError(function)

    def _name(self, name: str) -> str:
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.parameters:
            return self.parameters[name]
        return name if "." in name else f"{name}.Ref"  # a resource of the template

    def statements(self, resource: str, kind: str = "Policies") -> list[dict]:
        """The statements of a role's inline policies (or, with kind="AssumeRolePolicyDocument", its trust)."""
        properties = self.resolve(self.template["Resources"][resource]["Properties"])
        if kind == "AssumeRolePolicyDocument":
            return properties[kind]["Statement"]
        return [
            statement for policy in properties[kind] for statement in policy["PolicyDocument"]["Statement"]
        ]


def like(pattern: str, value: str) -> bool:
    """StringLike/ArnLike and Action/Resource matching: `*` any run of characters, `?` exactly one."""
    expression = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(expression, value, re.DOTALL) is not None


OPERATORS = {
    "StringEquals": lambda expected, actual: expected == actual,
    "StringLike": like,
    "ArnEquals": lambda expected, actual: expected == actual,
    "ArnLike": like,
    "Bool": lambda expected, actual: str(expected).lower() == str(actual).lower(),
}


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def condition_holds(condition: Mapping, context: Mapping[str, str]) -> bool:
    for operator, keys in condition.items():
        if_exists = operator.endswith("IfExists")
        test = OPERATORS[operator.removesuffix("IfExists")]
        for key, expected in keys.items():
            if key not in context:
                if not if_exists:
                    return False
                continue
            if not any(test(value, context[key]) for value in _as_list(expected)):
                return False
    return True


def allows(
    statements: list[dict],
    action: str,
    resource: str = "*",
    context: Mapping[str, str] = (),
    principal: tuple[str, str] | None = None,
) -> bool:
    """Whether an Allow statement grants `action` on `resource` in `context` (the policies here deny
    nothing); for a trust policy, `principal` is (kind, name), e.g. ("Service", "cloudformation.amazonaws.com")."""
    context = dict(context)
    for statement in statements:
        if statement["Effect"] != "Allow":
            continue
        if principal and principal[1] not in _as_list(statement.get("Principal", {}).get(principal[0], [])):
            continue
        if not any(like(pattern.lower(), action.lower()) for pattern in _as_list(statement["Action"])):
            continue
        if "Resource" in statement and not any(like(p, resource) for p in _as_list(statement["Resource"])):
            continue
        if condition_holds(statement.get("Condition", {}), context):
            return True
    return False
