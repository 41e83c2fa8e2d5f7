"""A fake Google Cloud (gcloud, terraform), Kubernetes (kubectl) and edge (curl) for the deploy walk.

It models what docs/deploy.md relies on, and nothing else: each precondition the platform
documents (an API enabled before use, an account before its binding, a repository before a build,
a log-based metric minutes before an alert policy on it, an immutable Job, an organisation policy
refusing allUsers, node capacity against pod requests, ...) is a `Precondition` in
`fakecloud.platform.PRECONDITIONS` with the Google (or Kubernetes, Terraform) page it comes from,
and a step out of order fails with the platform's own message. Every call and its answer is
recorded. The model is only as good as that list: what is not in it is not checked.
"""
