"""docs/deploy.md, run: every walk from an empty project to a completed payment and back to nothing
billing, and steps out of order refused with the platform's own message.

The fake platform (fakecloud) is a model of Google Cloud's documented preconditions; each test
names the precondition it expects, and docs/deploy.md lists them all with their sources.
"""

from __future__ import annotations

import json
import re

import pytest
import walk
from fakecloud import cloud
from fakecloud.platform import PRECONDITIONS

DOC = (walk.REPO / "docs" / "deploy.md").read_text()


def test_every_command_block_says_which_walks_run_it():
    for block in walk.blocks(DOC):
        assert block.walks, f"docs/deploy.md:{block.line}: a bash block without a <!-- walk: ... --> marker"
        if block.walks[0] == "none":
            assert re.match(r"none \(.+\)", " ".join(block.walks)), (
                f"docs/deploy.md:{block.line}: say why it is not walked"
            )
        else:
            assert set(block.walks) <= set(walk.PATHS), f"docs/deploy.md:{block.line}: unknown walk in {block.walks}"
    for path in walk.PATHS:
        assert walk.blocks_of(path, DOC), f"no block runs in walk {path}"


def test_the_doc_lists_every_precondition_with_its_source():
    rows = dict(re.findall(r"^\| `([a-z0-9-]+)` \| .* \| (https://\S+) \|$", DOC, re.M))
    assert rows == {name: rule.page for name, rule in PRECONDITIONS.items()}


def calls_by(result: walk.Result, tool: str) -> list[dict]:
    return [call for call in result.calls() if call["tool"] == tool]


def existence_probe(call: dict) -> bool:
    """The scripts' own `describe`/`list` checks: a refusal there is how they learn a thing is missing."""
    return any(verb in call["args"] for verb in ("describe", "list"))


@pytest.mark.parametrize("path", list(walk.PATHS))
def test_walk_from_an_empty_project_to_a_completed_payment_and_back_to_nothing_billing(path, tmp_path):
    result = walk.run(path, tmp_path)

    assert result.returncode == 0, f"walk {path} stopped at block {result.failed_block}:\n{result.stderr[-4000:]}"
    refused = [call for call in result.refusals() if not existence_probe(call)]
    assert not refused, f"the platform refused: {[(c['rule'], c['args']) for c in refused]}"
    statuses = [
        json.loads(call["stdout"])["status"]
        for call in calls_by(result, "curl")
        if re.search(r"/payments/[0-9a-f-]+$", call["args"][-1])
    ]
    assert statuses and statuses[-1] == "completed", statuses
    state = result.state()
    [project] = state["projects"].values()
    assert cloud.billable(project) == [], f"still billing after the teardown: {cloud.billable(project)}"


def block_with(path: str, text: str) -> walk.Block:
    [found] = [block for block in walk.blocks_of(path, DOC) if text in block.code]
    return found


def until(path: str, text: str) -> list[walk.Block]:
    """A walk's blocks up to (not including) the first one containing `text`."""
    chosen = []
    for block in walk.blocks_of(path, DOC):
        if text in block.code:
            return chosen
        chosen.append(block)
    raise AssertionError(f"no block of {path} contains {text!r}")


def refused(result: walk.Result, rule: str) -> dict:
    assert result.returncode != 0, "the step out of order was not refused"
    last = result.last_refusal()
    assert last is not None and last["rule"] == rule, (last, result.stderr[-2000:])
    return last


def test_cloud_sql_before_its_api_is_refused(tmp_path):
    chosen = [block_with("cloudrun", "gcloud projects create"), block_with("cloudrun", "gcloud sql instances create")]
    result = walk.run("cloudrun", tmp_path, chosen=chosen)
    call = refused(result, "api-enabled")
    assert "Cloud SQL Admin API has not been used in project" in call["stderr"]


def test_a_binding_on_an_account_that_does_not_exist_yet_is_refused(tmp_path):
    chosen = [
        *until("gke-autopilot", "for name in initiator processor pubsub-push"),
        walk.Block(
            0,
            0,
            [],
            'gcloud secrets add-iam-policy-binding binpay-gateway-api-key --member="serviceAccount:binpay-processor@${SA_DOMAIN}" --role=roles/secretmanager.secretAccessor',
        ),
    ]
    call = refused(walk.run("gke-autopilot", tmp_path, chosen=chosen), "account-before-binding")
    assert "Service account binpay-processor@" in call["stderr"] and "does not exist" in call["stderr"]


def test_the_first_payment_before_the_deploy_is_refused(tmp_path):
    chosen = [*until("cloudrun", "bash deploy/cloudrun/deploy.sh"), block_with("cloudrun", "create_api_key")]
    call = refused(walk.run("cloudrun", tmp_path, chosen=chosen), "job-before-execute")
    assert "Job [initiator-migrate] could not be found" in call["stderr"]


def test_an_empty_gateway_key_is_refused(tmp_path):
    """Secret Manager refuses an empty gateway key: without a provider the doc must generate one (the sandbox's)."""
    chosen = [
        block_with("cloudrun", "gcloud projects create"),
        block_with("cloudrun", "gcloud services enable run.googleapis.com"),
        walk.Block(0, 0, [], "printf '%s' '' | gcloud secrets create binpay-gateway-api-key --data-file=-"),
    ]
    call = refused(walk.run("cloudrun", tmp_path, chosen=chosen), "secret-not-empty")
    assert "Secret Payload cannot be empty" in call["stderr"]


def test_allusers_under_domain_restricted_sharing_is_refused(tmp_path):
    """Under domain-restricted sharing (walk cloudrun-org) binding allUsers as invoker is refused; the doc's
    way (the invoker check disabled) passes in the same organisation, PUBLIC_INVOKER=allUsers does not."""
    deploy = block_with("cloudrun-org", "bash deploy/cloudrun/deploy.sh")
    chosen = [
        *until("cloudrun-org", "bash deploy/cloudrun/deploy.sh"),
        walk.Block(
            deploy.number, deploy.line, [], deploy.code.replace("bash deploy", "PUBLIC_INVOKER=allUsers bash deploy")
        ),
    ]
    call = refused(walk.run("cloudrun-org", tmp_path, chosen=chosen), "org-policy-allusers")
    assert "do not belong to a permitted customer" in call["stderr"]
    assert call["args"][-2:] == ["--member=allUsers", "--role=roles/run.invoker"]


def test_three_e2_medium_nodes_leave_pods_pending(tmp_path):
    """A regional Standard cluster with --num-nodes 1 (three e2-medium) keeps ~1.2 vCPU for BinPay's ~2.2:
    the pods placed last stay Pending and the rollout never completes."""
    old_cluster = walk.Block(
        0,
        0,
        [],
        'gcloud container clusters create binpay-cluster --region "$REGION" --num-nodes 1 '
        '--workload-pool "${PROJECT_ID}.svc.id.goog" --enable-dataplane-v2 '
        '--service-account="binpay-gke-nodes@${SA_DOMAIN}"\n'
        'gcloud container clusters get-credentials binpay-cluster --region "$REGION"',
    )
    chosen = []
    for block in walk.blocks_of("gke-standard", DOC):
        if "create_api_key" in block.code:
            break
        chosen.append(old_cluster if "gcloud container clusters create" in block.code else block)
    call = refused(walk.run("gke-standard", tmp_path, chosen=chosen), "node-capacity")
    assert call["tool"] == "kubectl" and "timed out waiting for the condition" in call["stderr"]
    assert "Pending" in call["stderr"]


def test_workload_identity_bindings_before_the_cluster_are_refused(tmp_path):
    chosen = [
        *until("gke-autopilot", "gcloud container clusters create-auto"),
        block_with("gke-autopilot", "for name in initiator processor pubsub-push"),
    ]
    call = refused(walk.run("gke-autopilot", tmp_path, chosen=chosen), "workload-identity-pool")
    assert "Identity Pool does not exist" in call["stderr"]


def test_terraform_without_application_default_credentials_is_refused(tmp_path):
    """Terraform needs application-default credentials: gcloud's login is not Terraform's."""
    terraform = block_with("terraform", "terraform init")
    chosen = [
        block_with("terraform", "gcloud projects create"),
        walk.Block(
            0,
            0,
            [],
            terraform.code.replace("gcloud auth application-default login", "true").replace(
                'gcloud auth application-default set-quota-project "$PROJECT_ID"', "true"
            ),
        ),
    ]
    call = refused(walk.run("terraform", tmp_path, chosen=chosen), "adc-for-terraform")
    assert "could not find default credentials" in call["stderr"]


def test_terraform_plan_without_the_resource_manager_api_is_refused(tmp_path):
    """A new project has Cloud Resource Manager off, and the Terraform provider reads the project through it."""
    terraform = block_with("terraform", "terraform init")
    code = terraform.code.replace(
        "cloudresourcemanager.googleapis.com serviceusage.googleapis.com", "serviceusage.googleapis.com"
    )
    code = code.replace('gcloud auth application-default set-quota-project "$PROJECT_ID"', "true")
    chosen = [block_with("terraform", "gcloud projects create"), walk.Block(0, 0, [], code)]
    call = refused(walk.run("terraform", tmp_path, chosen=chosen), "terraform-project-apis")
    assert "Cloud Resource Manager API has not been used" in call["stderr"]


def test_terraform_after_the_gcloud_steps_answers_409(tmp_path):
    """Terraform after the gcloud steps it replaces answers 409 (already exists): the doc must say which they are."""
    gcloud_steps = until("cloudrun", "bash deploy/cloudrun/deploy.sh")
    terraform = block_with("terraform", "terraform init")
    # The gateway's secrets were made by the gcloud steps already.
    code = re.sub(r"python3 -c .*\\\n  \| gcloud secrets create .*\n", "", terraform.code)
    assert "gcloud secrets create" not in code
    chosen = [*gcloud_steps, walk.Block(0, 0, [], code)]
    call = refused(walk.run("cloudrun", tmp_path, chosen=chosen), "already-exists")
    assert call["tool"] == "terraform" and "Error 409" in call["stderr"]


def test_deleting_the_protected_database_first_is_refused(tmp_path):
    chosen = [
        block_with("cloudrun", "gcloud projects create"),
        block_with("cloudrun", "gcloud services enable run.googleapis.com"),
        block_with("cloudrun", "gcloud sql instances create"),
        walk.Block(0, 0, [], "gcloud sql instances delete binpay-pg --quiet"),
    ]
    call = refused(walk.run("cloudrun", tmp_path, chosen=chosen), "sql-deletion-protection")
    assert "The instance is protected" in call["stderr"]


def test_terraform_destroy_without_lifting_the_protection_is_refused(tmp_path):
    teardown = block_with("terraform", "terraform destroy")
    chosen = [
        *until("terraform", "teardown.sh --outside-terraform"),
        walk.Block(
            0, 0, [], teardown.code.replace("terraform apply -var deletion_protection=false -auto-approve\n", "")
        ),
    ]
    call = refused(walk.run("terraform", tmp_path, chosen=chosen), "sql-deletion-protection")
    assert "deletion_protection is set to true" in call["stderr"]


def test_project_delete_leaves_nothing_billing(tmp_path):
    chosen = [*until("cloudrun", "create_api_key"), block_with("cloudrun", "gcloud projects create")]
    chosen[-1] = walk.Block(0, 0, [], 'gcloud projects delete "$PROJECT_ID" --quiet')
    result = walk.run("cloudrun", tmp_path, chosen=chosen)
    assert result.returncode == 0, result.stderr[-2000:]
    [project] = result.state()["projects"].values()
    assert project["state"] == "DELETE_REQUESTED" and cloud.billable(project) == []
    assert project["r"].get("sql_instance"), "the walk should have had something billing to stop"


def test_an_alert_policy_minutes_before_its_metric_is_available_is_refused(tmp_path):
    """An alert policy on a log metric created moments before is refused: deploy.sh creates the metrics first and retries."""
    chosen = [
        block_with("cloudrun", "gcloud projects create"),
        block_with("cloudrun", "gcloud services enable run.googleapis.com"),
        walk.Block(
            0,
            0,
            [],
            "gcloud logging metrics create binpay_dead_letters --config-from-file=monitoring/log-metrics/binpay_dead_letters.json\n"
            "gcloud alpha monitoring policies create --policy-from-file=monitoring/alert-policies/dead-letters.json",
        ),
    ]
    call = refused(walk.run("cloudrun", tmp_path, chosen=chosen), "metric-before-policy")
    assert "could take up to 10 minutes to become available" in call["stderr"]


def test_a_build_as_the_compute_default_account_without_the_compute_api_is_refused(tmp_path):
    """Without the Compute API a build as the compute default account is refused: builds run as binpay-build."""
    chosen = [
        block_with("cloudrun", "gcloud projects create"),
        block_with("cloudrun", "gcloud services enable run.googleapis.com"),
        walk.Block(
            0,
            0,
            [],
            'gcloud artifacts repositories create binpay --repository-format=docker --location="$REGION"\n'
            'gcloud builds submit initiator --tag="${REGION}-docker.pkg.dev/${PROJECT_ID}/binpay/initiator:$(git rev-parse HEAD)"',
        ),
    ]
    call = refused(walk.run("cloudrun", tmp_path, chosen=chosen), "compute-default-account")
    assert "-compute@developer.gserviceaccount.com does not exist" in call["stderr"]


def test_the_workflows_rollout_only_rolls_out_a_new_commit(tmp_path):
    """What deploy-cloudrun.yml runs as the narrow deployer, on a project the walk bootstrapped."""
    chosen = [block for block in walk.blocks_of("cloudrun", DOC) if "teardown.sh" not in block.code]
    rollout = (
        "git -c user.name=walk -c user.email=walk@example.org commit -q --allow-empty -m next\n"
        'PROJECT_ID="$PROJECT_ID" REGION="$REGION" bash deploy/cloudrun/deploy.sh --rollout'
    )
    result = walk.run("cloudrun", tmp_path, chosen=[*chosen, walk.Block(0, 0, [], rollout)])
    assert result.returncode == 0, result.stderr[-3000:]
    services = result.state()["projects"]["binpay-walk"]["r"]["run_service"]
    assert all(len(service["revisions"]) == 2 for service in services.values()), services.keys()
    last = [c for c in result.calls() if c["tool"] == "gcloud"][-12:]
    assert not [c for c in last if "add-iam-policy-binding" in c["args"] or "create" in c["args"]]
