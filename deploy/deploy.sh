#!/usr/bin/env bash
# Create, update and tear down the covid-pipeline stacks on AWS (see deploy/README.md).
#
#   deploy/deploy.sh infra                  network, bastion, storage, registry, database, cluster
#   deploy/deploy.sh ci OWNER/REPO          the GitHub OIDC deploy role (once per repository)
#   deploy/deploy.sh image                  build the image of HEAD and push it to ECR; prints its tag
#   deploy/deploy.sh services TAG [K=V ...] the services stack running image TAG (K=V: more parameters)
#   deploy/deploy.sh init-db [TAG]          the init stack on image TAG (default: the services' image), then
#                                           its one-off database initialisation task (idempotent)
#   deploy/deploy.sh first-deploy           all of the above in order, for a new environment
#   deploy/deploy.sh rollback TAG           the services stack back on an earlier image
#   deploy/deploy.sh rotate LOGIN           new password for master, dagster, covid_pipeline, metabase or metabase_reader
#   deploy/deploy.sh teardown               delete every stack (asks for the environment's name)
#
# Environment: ENVIRONMENT_NAME (default covid), AWS_REGION (or the CLI's configured region),
# ALB_INGRESS_CIDR (required by `infra`: who may reach the load balancer), DOCKER_HUB_CREDENTIALS_ARN
# (required by `infra`: the ecr-pullthroughcache/ secret), CERTIFICATE_ARN + DOMAIN_NAME (HTTPS and
# Dagster's login), OIDC_ISSUER, OIDC_AUTHORIZATION_ENDPOINT, OIDC_TOKEN_ENDPOINT,
# OIDC_USER_INFO_ENDPOINT, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET_NAME (optional: log in with your
# OIDC provider instead of Cognito), CREATE_INTERFACE_ENDPOINTS (default false),
# GITHUB_OIDC_PROVIDER_ARN (optional: the account's existing GitHub provider), METABASE_IMAGE_DIGEST
# (required by the first `services`), SERVICES_STACK_ROLE_ARN (optional: found in the ci stack otherwise).
# The settings above (but SERVICES_STACK_ROLE_ARN) are kept in deploy/environments/<ENVIRONMENT_NAME>.env
# (DEPLOY_SETTINGS_FILE to keep them elsewhere): a variable set in the environment, even to "", wins
# and is written there once a stack deployed; one unset is read from there; a parameter whose
# setting is in neither place is not passed, so its stack keeps its current value.
# Runs on bash 3.2 (macOS): no empty "${array[@]}" under set -u, no bash 4 features.
set -euo pipefail

ENVIRONMENT_NAME="${ENVIRONMENT_NAME:-covid}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)" # also when sourced
TEMPLATES="$HERE/cloudformation"
ROOT="$(dirname "$HERE")"
# The order stacks are created in: each one imports only exports of the ones before it. The init
# stack (the only task that reads the master secret) is deployed by init-db alone, with the caller's
# credentials; the deploy workflow's roles can touch the services stack only.
STACK_ORDER=(network bastion storage registry database cluster ci init services)
INFRA_STACKS=(network bastion storage registry database cluster)

# What deploy/environments/<env>.env may hold: where and how an environment is deployed, no secret.
SETTINGS=(ALB_INGRESS_CIDR DOCKER_HUB_CREDENTIALS_ARN CERTIFICATE_ARN DOMAIN_NAME OIDC_ISSUER
    OIDC_AUTHORIZATION_ENDPOINT OIDC_TOKEN_ENDPOINT OIDC_USER_INFO_ENDPOINT OIDC_CLIENT_ID
    OIDC_CLIENT_SECRET_NAME CREATE_INTERFACE_ENDPOINTS GITHUB_OIDC_PROVIDER_ARN METABASE_IMAGE_DIGEST)
SETTINGS_FILE="${DEPLOY_SETTINGS_FILE:-$HERE/environments/$ENVIRONMENT_NAME.env}"

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'deploy.sh: %s\n' "$*" >&2; exit 1; }
stack_name() { printf '%s-%s' "$ENVIRONMENT_NAME" "$1"; }
is_set() { [[ -n "${!1+set}" ]]; } # the variable named $1 is set, even to ""

# Each SETTING=value line of the settings file whose variable the environment does not set.
load_settings() {
    local line key known setting number=0
    [[ -f "$SETTINGS_FILE" ]] || return 0
    while IFS= read -r line || [[ -n "$line" ]]; do
        number=$((number + 1))
        [[ -z "$line" || "$line" == "#"* ]] && continue
        key="${line%%=*}"
        known=""
        for setting in "${SETTINGS[@]}"; do
            [[ "$key" != "$setting" ]] || known=yes
        done
        [[ "$line" == *=* && -n "$known" ]] ||
            die "$SETTINGS_FILE line $number: expected SETTING=value, SETTING one of ${SETTINGS[*]}"
        is_set "$key" || export "$key=${line#*=}"
    done <"$SETTINGS_FILE"
}

# Every setting in force, into the settings file (once a stack deployed with them).
save_settings() {
    local setting
    mkdir -p "$(dirname "$SETTINGS_FILE")"
    {
        printf '# Settings of environment %s, kept by deploy/deploy.sh (see deploy/README.md).\n' \
            "$ENVIRONMENT_NAME"
        for setting in "${SETTINGS[@]}"; do
            if is_set "$setting"; then
                printf '%s=%s\n' "$setting" "${!setting}"
            fi
        done
    } >"$SETTINGS_FILE.new"
    mv "$SETTINGS_FILE.new" "$SETTINGS_FILE"
}

# Key=Value when the setting is known (environment or settings file); nothing otherwise, so that the
# stack keeps its current value (`aws cloudformation deploy` sends UsePreviousValue for it).
parameter() { # Key SETTING
    if is_set "$2"; then
        printf '%s=%s\n' "$1" "${!2}"
    fi
}

stack_output() { # stack output-key
    aws cloudformation describe-stacks --stack-name "$(stack_name "$1")" \
        --query "Stacks[0].Outputs[?OutputKey=='$2'].OutputValue" --output text
}

stack_exists() {
    aws cloudformation describe-stacks --stack-name "$(stack_name "$1")" >/dev/null 2>&1
}

stack_status() { # stack: its status, nothing when it does not exist
    aws cloudformation describe-stacks --stack-name "$(stack_name "$1")" \
        --query 'Stacks[0].StackStatus' --output text 2>/dev/null || true
}

# A stack whose creation failed is left in ROLLBACK_COMPLETE, which CloudFormation can only delete.
refuse_rolled_back() { # stack
    local name reason
    name="$(stack_name "$1")"
    [[ "$(stack_status "$1")" == ROLLBACK_COMPLETE ]] || return 0
    # Events are newest first: the last CREATE_FAILED is the first failure, the cause.
    reason="$(aws cloudformation describe-stack-events --stack-name "$name" \
        --query "StackEvents[?ResourceStatus=='CREATE_FAILED'] | [-1].[LogicalResourceId, ResourceStatusReason]" \
        --output text 2>/dev/null || true)"
    die "stack $name failed to create and was rolled back (ROLLBACK_COMPLETE${reason:+: $reason})." \
        "CloudFormation cannot update such a stack: delete it, then run this command again:" \
        "aws cloudformation delete-stack --stack-name $name &&" \
        "aws cloudformation wait stack-delete-complete --stack-name $name"
}

deploy_stack() { # stack [Key=Value ...]
    local stack="$1"
    shift
    refuse_rolled_back "$stack"
    # CloudFormation updates the services stack with its own role: the caller needs no ECS/IAM
    # rights. (An array that may be empty cannot be expanded under set -u by bash 3.2.)
    local role_option="" role_arn=""
    if [[ "$stack" == services ]]; then
        role_option=--role-arn
        role_arn="${SERVICES_STACK_ROLE_ARN:-$(stack_output ci ServicesStackRoleArn)}"
    fi
    log "stack $(stack_name "$stack")"
    aws cloudformation deploy \
        --stack-name "$(stack_name "$stack")" \
        --template-file "$TEMPLATES/$stack.yaml" \
        --capabilities CAPABILITY_IAM \
        --no-fail-on-empty-changeset \
        --tags "application=covid-pipeline" "environment=$ENVIRONMENT_NAME" \
        ${role_option:+"$role_option" "$role_arn"} \
        --parameter-overrides "EnvironmentName=$ENVIRONMENT_NAME" "$@" || {
        refuse_rolled_back "$stack"
        die "stack $(stack_name "$stack") was not deployed (see the error above)"
    }
    save_settings
}

# The parameters `infra` gives each stack beyond EnvironmentName, one Key=Value a line.
infra_parameters() { # stack
    case "$1" in
        network)
            parameter AlbIngressCidr ALB_INGRESS_CIDR
            parameter CreateInterfaceEndpoints CREATE_INTERFACE_ENDPOINTS
            ;;
        registry) parameter DockerHubCredentialsArn DOCKER_HUB_CREDENTIALS_ARN ;;
        cluster)
            parameter CertificateArn CERTIFICATE_ARN
            parameter DomainName DOMAIN_NAME
            parameter OidcIssuer OIDC_ISSUER
            parameter OidcAuthorizationEndpoint OIDC_AUTHORIZATION_ENDPOINT
            parameter OidcTokenEndpoint OIDC_TOKEN_ENDPOINT
            parameter OidcUserInfoEndpoint OIDC_USER_INFO_ENDPOINT
            parameter OidcClientId OIDC_CLIENT_ID
            parameter OidcClientSecretName OIDC_CLIENT_SECRET_NAME
            ;;
        *) ;;
    esac
}

# ECS needs its service-linked role to create a cluster with capacity providers. On a fresh account
# it does not exist yet: CloudFormation's CreateCluster fails ("Unable to assume the service linked
# role") and leaves the stack in ROLLBACK_COMPLETE. Created first, once per account.
ecs_service_linked_role() {
    local answer
    if answer="$(aws iam create-service-linked-role --aws-service-name ecs.amazonaws.com 2>&1 >/dev/null)"; then
        log "created the ECS service-linked role AWSServiceRoleForECS"
    elif [[ "$answer" != *"has been taken"* && "$answer" != *"already exists"* ]]; then
        die "could not create the ECS service-linked role: $answer"
    fi
}

infra() {
    [[ -n "${ALB_INGRESS_CIDR:-}" ]] || die "set ALB_INGRESS_CIDR (e.g. your office range, 203.0.113.0/24)"
    [[ -n "${DOCKER_HUB_CREDENTIALS_ARN:-}" ]] ||
        die "set DOCKER_HUB_CREDENTIALS_ARN (secret ecr-pullthroughcache/..., see deploy/README.md)"
    [[ -z "${CERTIFICATE_ARN:-}" || -n "${DOMAIN_NAME:-}" ]] || die "CERTIFICATE_ARN needs DOMAIN_NAME"
    ecs_service_linked_role
    local stack line
    for stack in "${INFRA_STACKS[@]}"; do
        # bash 3.2 has no mapfile: collect the lines as positional parameters ("$@" may be empty).
        set --
        while IFS= read -r line; do
            set -- "$@" "$line"
        done < <(infra_parameters "$stack")
        deploy_stack "$stack" "$@"
    done
}

# Builds and pushes the image of HEAD unless ECR has it, and sets IMAGE_TAG. Never call it inside a
# command substitution: bash runs that without `set -e`, and a failed build would still give a tag.
build_image() {
    local repository registry tag
    repository="$(stack_output registry RepositoryUri)"
    registry="${repository%%/*}"
    tag="$(git -C "$ROOT" rev-parse HEAD)"
    [[ -z "$(git -C "$ROOT" status --porcelain)" ]] || die "uncommitted changes: the tag would lie"
    if aws ecr describe-images --repository-name "${repository#*/}" --image-ids "imageTag=$tag" \
        >/dev/null 2>&1; then
        log "image $repository:$tag already pushed"
    else
        log "image $repository:$tag"
        # (stdout carries only the tag: the tools' output goes to stderr)
        aws ecr get-login-password | docker login --username AWS --password-stdin "$registry" >&2 ||
            die "docker could not log in to $registry: nothing was deployed"
        # The tasks are X86_64: from an arm64 machine (Apple silicon) build for them, not for it.
        docker build --platform linux/amd64 --file "$ROOT/docker/Dockerfile" --tag "$repository:$tag" "$ROOT" >&2 ||
            die "the image build failed: nothing was deployed"
        docker push "$repository:$tag" >&2 || die "pushing $repository:$tag failed: nothing was deployed"
    fi
    IMAGE_TAG="$tag"
}

image() {
    build_image
    printf '%s\n' "$IMAGE_TAG"
}

services() { # TAG [Key=Value ...]
    local tag="${1:-}" https
    [[ "$tag" =~ ^[A-Za-z0-9._-]{1,128}$ ]] || die "services needs an image tag (a commit SHA)"
    shift
    # Whether the load balancer has HTTPS: only then does a listener forward to Dagster, and ECS
    # attaches no service to a target group nothing forwards to.
    https="$(stack_output cluster LoadBalancerHttps)"
    [[ "$https" == true || "$https" == false ]] ||
        die "the cluster stack has no LoadBalancerHttps output: run deploy/deploy.sh infra first"
    # The digest is kept from the previous deployment unless METABASE_IMAGE_DIGEST is set.
    deploy_stack services "ImageTag=$tag" "LoadBalancerHttps=$https" \
        ${METABASE_IMAGE_DIGEST:+"MetabaseImageDigest=$METABASE_IMAGE_DIGEST"} "$@"
    log "running image $tag; Dagster at https://${DOMAIN_NAME:-<DomainName>}/dagster (HTTPS only)"
}

init_db() { # [TAG]: the image the task runs, by default the one the services stack runs
    local tag="${1:-}" cluster subnets group definition task status
    if [[ -z "$tag" ]]; then
        tag="$(stack_output services ImageTag 2>/dev/null || true)"
        [[ "$tag" != None ]] || tag=""
    fi
    [[ "$tag" =~ ^[A-Za-z0-9._-]{1,128}$ ]] ||
        die "init-db needs an image tag (a commit SHA): no services stack runs one yet"
    deploy_stack init "ImageTag=$tag"
    cluster="$(stack_output cluster ClusterName)"
    definition="$(stack_output init InitDatabaseTaskDefinitionArn)"
    subnets="$(aws ssm get-parameter --name "/$ENVIRONMENT_NAME/env/DAGSTER_RUN_SUBNETS" \
        --query Parameter.Value --output text)"
    group="$(aws ssm get-parameter --name "/$ENVIRONMENT_NAME/env/DAGSTER_RUN_SECURITY_GROUP" \
        --query Parameter.Value --output text)"
    log "init-db: task $definition"
    # The run tasks' network: it may reach the database and nothing inbound may reach it.
    task="$(aws ecs run-task --cluster "$cluster" --task-definition "$definition" --launch-type FARGATE \
        --network-configuration "awsvpcConfiguration={subnets=[$subnets],securityGroups=[$group],assignPublicIp=DISABLED}" \
        --query 'tasks[0].taskArn' --output text)"
    aws ecs wait tasks-stopped --cluster "$cluster" --tasks "$task"
    status="$(aws ecs describe-tasks --cluster "$cluster" --tasks "$task" \
        --query 'tasks[0].containers[0].exitCode' --output text)"
    [[ "$status" == 0 ]] || die "init-db failed (exit $status): see log group /$ENVIRONMENT_NAME/init-database"
    log "init-db: done"
}

first_deploy() {
    [[ -n "${METABASE_IMAGE_DIGEST:-}" ]] ||
        die "set METABASE_IMAGE_DIGEST (docker buildx imagetools inspect metabase/metabase:v0.52.0)"
    infra
    stack_exists ci || die "deploy the ci stack first: deploy/deploy.sh ci OWNER/REPO"
    build_image
    # Services log in when they start: the databases and logins first. (`aws cloudformation deploy`
    # keeps a parameter's previous value unless it is given again: the counts are given.)
    init_db "$IMAGE_TAG"
    services "$IMAGE_TAG" WebserverCount=2 DaemonCount=1 MetabaseCount=1
}

# secret name under <env>/database/, and the services that read it at start (restarted after).
login_secret() { # LOGIN
    case "$1" in
        master) printf 'master\n' ;;
        dagster) printf 'dagster dagster-webserver dagster-daemon\n' ;;
        covid_pipeline) printf 'pipeline\n' ;; # run tasks read it when each run starts
        metabase) printf 'metabase metabase\n' ;;
        metabase_reader) printf 'metabase-reader\n' ;; # then: covid-pipeline metabase provision
        *) return 1 ;;
    esac
}

rotate() { # LOGIN: a new password in its secret, in PostgreSQL, then in the tasks that use it
    local login="${1:-}" spec secret services password cluster service
    spec="$(login_secret "$login")" || die "rotate needs one of: master dagster covid_pipeline metabase metabase_reader"
    secret="${spec%% *}"
    services="${spec#"$secret"}"
    password="$(aws secretsmanager get-random-password --password-length 32 \
        --exclude-characters "\"'@/\\:?#[]%&+\$\`!^*()<>{}|;, " --query RandomPassword --output text)"
    # Global: the EXIT trap runs once this function has returned, when a local is gone.
    ROTATE_WORK="$(mktemp -d)"
    trap 'rm -rf "$ROTATE_WORK"' EXIT
    aws secretsmanager get-secret-value --secret-id "$ENVIRONMENT_NAME/database/$secret" \
        --query SecretString --output text |
        NEW_PASSWORD="$password" python3 -c \
            'import json, os, sys; s = json.load(sys.stdin); s["password"] = os.environ["NEW_PASSWORD"]; print(json.dumps(s))' \
            >"$ROTATE_WORK/secret.json"
    if [[ "$login" == master ]]; then
        # RDS first: if it refuses, the secret still holds the password that works.
        NEW_PASSWORD="$password" DB="$ENVIRONMENT_NAME-master" python3 -c \
            'import json, os; print(json.dumps({"DBInstanceIdentifier": os.environ["DB"], "MasterUserPassword": os.environ["NEW_PASSWORD"], "ApplyImmediately": True}))' \
            >"$ROTATE_WORK/modify.json"
        aws rds modify-db-instance --cli-input-json "file://$ROTATE_WORK/modify.json" >/dev/null
    fi
    aws secretsmanager put-secret-value --secret-id "$ENVIRONMENT_NAME/database/$secret" \
        --secret-string "file://$ROTATE_WORK/secret.json" >/dev/null
    [[ "$login" == master ]] || init_db # sets every login's password from its secret
    cluster="$(stack_output cluster ClusterName)"
    for service in $services; do
        log "restarting $service on the new password"
        aws ecs update-service --cluster "$cluster" --service "$service" --force-new-deployment >/dev/null
    done
    log "rotated the password of $login"
}

teardown() {
    local answer stack i
    printf 'Delete every stack of environment "%s" in %s? Type its name: ' \
        "$ENVIRONMENT_NAME" "$(aws configure get region || printf '%s' "${AWS_REGION:-}")" >&2
    read -r answer
    [[ "$answer" == "$ENVIRONMENT_NAME" ]] || die "not confirmed"
    if stack_exists database; then
        log "lifting the databases' deletion protection (a final snapshot of the master is kept)"
        deploy_stack database DeletionProtection=false
    fi
    for ((i = ${#STACK_ORDER[@]} - 1; i >= 0; i--)); do
        stack="${STACK_ORDER[i]}"
        stack_exists "$stack" || continue
        log "deleting $(stack_name "$stack")"
        aws cloudformation delete-stack --stack-name "$(stack_name "$stack")"
        aws cloudformation wait stack-delete-complete --stack-name "$(stack_name "$stack")"
    done
    log "kept on purpose: the S3 buckets, the ECR repository, the master's final snapshot, its secret" \
        "($ENVIRONMENT_NAME/database/master) and Metabase's encryption key (delete by hand)"
}

main() {
    local command
    command="${1:-}"
    shift || true
    load_settings
    case "$command" in
        infra) infra ;;
        ci)
            [[ -n "${1:-}" ]] || die "ci needs OWNER/REPO"
            deploy_stack ci "GitHubRepository=$1" ${GITHUB_OIDC_PROVIDER_ARN+"GitHubOidcProviderArn=$GITHUB_OIDC_PROVIDER_ARN"}
            ;;
        image) image ;;
        services | rollback) services "$@" ;;
        init-db) init_db "$@" ;;
        first-deploy) first_deploy ;;
        rotate) rotate "$@" ;;
        teardown) teardown ;;
        *) sed -n '2,/^set -euo pipefail$/{/^#/p;}' "$0" >&2; exit 2 ;;
    esac
}

# Sourced (covid_pipeline_tests/test_deploy.py), it only defines the functions.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
