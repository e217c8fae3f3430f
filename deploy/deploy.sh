#!/usr/bin/env bash
# Create, update and tear down the covid-pipeline stacks on AWS (see deploy/README.md).
#
#   deploy/deploy.sh infra                  network, bastion, storage, registry, database, cluster
#   deploy/deploy.sh ci OWNER/REPO          the GitHub OIDC deploy role (once per repository)
#   deploy/deploy.sh image                  build the image of HEAD and push it to ECR; prints its tag
#   deploy/deploy.sh services TAG [K=V ...] the services stack running image TAG (K=V: more parameters)
#   deploy/deploy.sh init-db                the one-off database initialisation task (idempotent)
#   deploy/deploy.sh first-deploy           all of the above in order, for a new environment
#   deploy/deploy.sh rollback TAG           the services stack back on an earlier image
#   deploy/deploy.sh teardown               delete every stack (asks for the environment's name)
#
# Environment: ENVIRONMENT_NAME (default covid), AWS_REGION (or the CLI's configured region),
# ALB_INGRESS_CIDR (required by `infra`: who may reach the load balancer), CERTIFICATE_ARN
# (optional: HTTPS), SERVICES_STACK_ROLE_ARN (optional: found in the ci stack otherwise).
set -euo pipefail

ENVIRONMENT_NAME="${ENVIRONMENT_NAME:-covid}"
HERE="$(cd "$(dirname "$0")" && pwd)"
TEMPLATES="$HERE/cloudformation"
ROOT="$(dirname "$HERE")"
# The order stacks are created in: each one imports only exports of the ones before it.
STACK_ORDER=(network bastion storage registry database cluster ci services)
INFRA_STACKS=(network bastion storage registry database cluster)

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'deploy.sh: %s\n' "$*" >&2; exit 1; }
stack_name() { printf '%s-%s' "$ENVIRONMENT_NAME" "$1"; }

stack_output() { # stack output-key
    aws cloudformation describe-stacks --stack-name "$(stack_name "$1")" \
        --query "Stacks[0].Outputs[?OutputKey=='$2'].OutputValue" --output text
}

stack_exists() {
    aws cloudformation describe-stacks --stack-name "$(stack_name "$1")" >/dev/null 2>&1
}

deploy_stack() { # stack [Key=Value ...]
    local stack="$1"
    shift
    local extra=()
    if [[ "$stack" == services ]]; then
        # CloudFormation updates this stack with its own role: the caller needs no ECS/IAM rights.
        extra=(--role-arn "${SERVICES_STACK_ROLE_ARN:-$(stack_output ci ServicesStackRoleArn)}")
    fi
    log "stack $(stack_name "$stack")"
    aws cloudformation deploy \
        --stack-name "$(stack_name "$stack")" \
        --template-file "$TEMPLATES/$stack.yaml" \
        --capabilities CAPABILITY_IAM \
        --no-fail-on-empty-changeset \
        --tags "application=covid-pipeline" "environment=$ENVIRONMENT_NAME" \
        "${extra[@]}" \
        --parameter-overrides "EnvironmentName=$ENVIRONMENT_NAME" "$@"
}

infra() {
    [[ -n "${ALB_INGRESS_CIDR:-}" ]] || die "set ALB_INGRESS_CIDR (e.g. your office range, 203.0.113.0/24)"
    local stack
    for stack in "${INFRA_STACKS[@]}"; do
        case "$stack" in
            network) deploy_stack network "AlbIngressCidr=$ALB_INGRESS_CIDR" ;;
            cluster) deploy_stack cluster "CertificateArn=${CERTIFICATE_ARN:-}" ;;
            *) deploy_stack "$stack" ;;
        esac
    done
}

image() {
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
        aws ecr get-login-password | docker login --username AWS --password-stdin "$registry" >&2
        docker build --file "$ROOT/docker/Dockerfile" --tag "$repository:$tag" "$ROOT" >&2
        docker push "$repository:$tag" >&2
    fi
    printf '%s\n' "$tag"
}

services() { # TAG [Key=Value ...]
    local tag="${1:-}"
    [[ "$tag" =~ ^[A-Za-z0-9._-]{1,128}$ ]] || die "services needs an image tag (a commit SHA)"
    shift
    deploy_stack services "ImageTag=$tag" "$@"
    log "running image $tag; Dagster at http://$(stack_output cluster LoadBalancerDns)/dagster"
}

init_db() {
    local cluster subnets group definition task status
    cluster="$(stack_output cluster ClusterName)"
    definition="$(stack_output services InitDatabaseTaskDefinitionArn)"
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
    local tag
    infra
    stack_exists ci || die "deploy the ci stack first: deploy/deploy.sh ci OWNER/REPO"
    tag="$(image)"
    # Services start only once their databases exist: create the stack idle, initialise, start.
    # (`aws cloudformation deploy` keeps a parameter's previous value unless it is given again.)
    services "$tag" WebserverCount=0 DaemonCount=0 MetabaseCount=0
    init_db
    services "$tag" WebserverCount=2 DaemonCount=1 MetabaseCount=1
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
    log "kept on purpose: the S3 buckets, the ECR repository and the master's final snapshot (delete by hand)"
}

command="${1:-}"
shift || true
case "$command" in
    infra) infra ;;
    ci) [[ -n "${1:-}" ]] || die "ci needs OWNER/REPO"; deploy_stack ci "GitHubRepository=$1" ;;
    image) image ;;
    services | rollback) services "$@" ;;
    init-db) init_db ;;
    first-deploy) first_deploy ;;
    teardown) teardown ;;
    *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
