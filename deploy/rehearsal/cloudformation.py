"""`aws cloudformation deploy` for moto: what deploy.sh's `aws` runs for that one command.

moto cannot take the templates as they are (covid_pipeline_tests/helpers/moto_cloudformation.py says
what it lacks and how `for_moto` makes up for it), so this does what the AWS CLI's `deploy` does
(awscli/customizations/cloudformation/deploy.py and deployer.py) with the template changed for moto:

- a new stack is created with the parameters given (the others at their defaults; one without a
  default that is not given is refused);
- an existing stack is updated with the parameters given and the previous value of every other
  one (the CLI's UsePreviousValue), or left alone when nothing changed ("No changes to deploy");
- a stack in ROLLBACK_COMPLETE cannot be updated (CloudFormation's own refusal);
- a stack that does not end complete fails the command (exit 255), as the CLI fails it.

    python -m deploy.rehearsal.cloudformation --stack-name NAME --template-file PATH
        [--parameter-overrides K=V ...] [--role-arn ARN] [--capabilities ...] [--tags ...]
        [--no-fail-on-empty-changeset]

Templates are read with cfn-lint's loader; REHEARSAL_DECODED_TEMPLATES may name a folder of
templates it decoded already (<stem>.json), to spare each call the loader's import.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

from covid_pipeline_tests.helpers.moto_cloudformation import for_moto


def decoded(template_file: Path) -> dict:
    folder = os.environ.get("REHEARSAL_DECODED_TEMPLATES")
    if folder and (Path(folder) / f"{template_file.stem}.json").exists():
        return json.loads((Path(folder) / f"{template_file.stem}.json").read_text())
    from cfnlint.decode import decode

    template, errors = decode(str(template_file))
    if errors:
        raise SystemExit(f"{template_file}: {errors}")
    return json.loads(json.dumps(template, default=str))


def fail(message: str) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(255)


def deploy(arguments: argparse.Namespace) -> None:
    client = boto3.client("cloudformation")
    template = decoded(Path(arguments.template_file))
    given = dict(item.split("=", 1) for item in arguments.parameter_overrides or [])
    declared = template.get("Parameters", {})
    unknown = set(given) - set(declared)
    if unknown:
        fail(f"Parameters: {sorted(unknown)} do not exist in the template")
    try:
        (stack,) = client.describe_stacks(StackName=arguments.stack_name)["Stacks"]
    except ClientError:
        stack = None
    if stack and stack["StackStatus"] == "ROLLBACK_COMPLETE":
        fail(
            "An error occurred (ValidationError) when calling the CreateChangeSet operation: "
            f"Stack:{stack['StackId']} is in ROLLBACK_COMPLETE state and can not be updated."
        )
    if stack:
        previous = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
        values = {
            name: given.get(name, previous.get(name, str(spec.get("Default", ""))))
            for name, spec in declared.items()
        }
    else:
        missing = [name for name, spec in declared.items() if "Default" not in spec and name not in given]
        if missing:
            fail(
                "An error occurred (ValidationError) when calling the CreateChangeSet operation: "
                f"Parameters: {missing} must have values"
            )
        values = given
    body = for_moto(template, values)
    parameters = [{"ParameterKey": key, "ParameterValue": value} for key, value in values.items()]
    options = {"RoleARN": arguments.role_arn} if arguments.role_arn else {}
    options["Capabilities"] = arguments.capabilities or []
    try:
        if stack:
            current = client.get_template(StackName=arguments.stack_name)["TemplateBody"]
            current = json.loads(current) if isinstance(current, str) else current
            if current == body and previous == values:
                print(f"\nNo changes to deploy. Stack {arguments.stack_name} is up to date")
                if arguments.no_fail_on_empty_changeset:
                    return
                raise SystemExit(255)
            client.update_stack(
                StackName=arguments.stack_name,
                TemplateBody=json.dumps(body),
                Parameters=parameters,
                **options,
            )
        else:
            client.create_stack(
                StackName=arguments.stack_name,
                TemplateBody=json.dumps(body),
                Parameters=parameters,
                **options,
            )
    except ClientError as error:
        fail(str(error))
    (stack,) = client.describe_stacks(StackName=arguments.stack_name)["Stacks"]
    if stack["StackStatus"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        fail(
            "\nFailed to create/update the stack. Run the following command\n"
            "to fetch the list of events leading up to the failure\n"
            f"aws cloudformation describe-stack-events --stack-name {arguments.stack_name}"
        )
    print(f"Successfully created/updated stack - {arguments.stack_name}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="aws cloudformation deploy")
    parser.add_argument("--stack-name", required=True)
    parser.add_argument("--template-file", required=True)
    parser.add_argument("--parameter-overrides", nargs="*")
    parser.add_argument("--capabilities", nargs="*")
    parser.add_argument("--tags", nargs="*")
    parser.add_argument("--role-arn")
    parser.add_argument("--no-fail-on-empty-changeset", action="store_true")
    deploy(parser.parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
