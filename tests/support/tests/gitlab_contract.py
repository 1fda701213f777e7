"""The official GitLab client (PyPI python-gitlab) against the in-repo fake GitLab.

Run by tests/support/tests/gitlab_fake.rs with the fake's URL and token as arguments; every
check is an assert, so any disagreement exits non-zero with a traceback.
"""
import sys

import gitlab

url, token = sys.argv[1], sys.argv[2]
gl = gitlab.Gitlab(url, private_token=token)

# Authentication and the current user.
gl.auth()
assert gl.user.username == "airlock", gl.user

# Project by numeric ID and by URL-encoded full path.
project = gl.projects.get(42)
assert project.path_with_namespace == "acme/platform/app", project
assert gl.projects.get("acme/platform/app").id == 42

# One variable, and one scoped variable selected with filter[environment_scope].
v = project.variables.get("DB_PASSWORD", filter={"environment_scope": "*"})
assert (v.key, v.value, v.environment_scope) == ("DB_PASSWORD", "hunter2", "*"), v
prod = project.variables.get("DB_PASSWORD", filter={"environment_scope": "production"})
assert prod.value == "prod-secret", prod
only = project.variables.get("API_KEY")
assert only.value == '{"user":"svc","token":"abc"}', only

# A key defined for several scopes, without a filter: GitLab's 409.
try:
    project.variables.get("DB_PASSWORD")
    raise AssertionError("expected a 409")
except gitlab.exceptions.GitlabGetError as e:
    assert e.response_code == 409, e

# Not found.
try:
    project.variables.get("NOPE")
    raise AssertionError("expected a 404")
except gitlab.exceptions.GitlabGetError as e:
    assert e.response_code == 404 and e.error_message == "404 Variable Not Found", e

# Listing follows the pagination headers to the end.
keys = sorted((v.key, v.environment_scope) for v in project.variables.list(get_all=True, per_page=2))
assert len(keys) == 25, keys
page2 = project.variables.list(page=2, per_page=10)
assert len(page2) == 10, page2
last = project.variables.list(page=3, per_page=10)
assert len(last) == 5, last
lazy = list(project.variables.list(iterator=True, per_page=7))
assert len(lazy) == 25, len(lazy)

# The project's ancestor groups, and group variables.
groups = [g.full_path for g in project.groups.list(get_all=True)]
assert groups == ["acme", "acme/platform"], groups
group = gl.groups.get(7)
assert group.full_path == "acme/platform", group
assert group.variables.get("SHARED").value == "from-platform"
assert [v.key for v in group.variables.list(get_all=True)] == ["SHARED"]
try:
    gl.groups.get(999)
    raise AssertionError("expected a 404")
except gitlab.exceptions.GitlabGetError as e:
    assert e.response_code == 404 and e.error_message == "404 Group Not Found", e

# A bad token.
bad = gitlab.Gitlab(url, private_token="wrong")
try:
    bad.projects.get(42, lazy=True).variables.get("DB_PASSWORD")
    raise AssertionError("expected a 401")
except gitlab.exceptions.GitlabAuthenticationError as e:
    assert e.response_code == 401 and e.error_message == "401 Unauthorized", e

print("python-gitlab", gitlab.__version__, "ok")
