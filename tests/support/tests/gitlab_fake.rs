//! The fake GitLab (`airlock_testenv::fakes::gitlab`) proven against GitLab's official
//! Python client, PyPI `python-gitlab` (pinned in tests/tools/requirements.txt): the client
//! does its ordinary calls and gets the documented answers, including pagination,
//! not-found and a bad token. Fails loudly when the venv or the client is missing.

use std::process::Command;

use airlock_testenv::fakes::gitlab::{FakeGitLab, Variable};

const TOKEN: &str = "glpat-contract";

fn seeded() -> FakeGitLab {
    let fake = FakeGitLab::start(TOKEN);
    fake.add_group(3, "acme", None)
        .add_group(7, "acme/platform", Some(3))
        .add_project(42, "acme/platform/app", Some(7))
        .set_group_variable(7, Variable::new("SHARED", "from-platform"))
        .set_project_variable(42, Variable::new("DB_PASSWORD", "hunter2"))
        .set_project_variable(
            42,
            Variable::scoped("DB_PASSWORD", "prod-secret", "production"),
        )
        .set_project_variable(
            42,
            Variable::new("API_KEY", r#"{"user":"svc","token":"abc"}"#),
        );
    for i in 0..22 {
        fake.set_project_variable(42, Variable::new(&format!("FILLER_{i:02}"), "x"));
    }
    fake
}

#[test]
fn python_gitlab_gets_the_documented_answers_from_the_fake() {
    let fake = seeded();
    let python = airlock_testenv::tools::python_tool("python");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gitlab_contract.py");
    let output = Command::new(python)
        .arg(script)
        .arg(fake.url())
        .arg(TOKEN)
        .output()
        .expect("running python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the python-gitlab contract failed (is python-gitlab installed? run tests/scripts/tools.sh)\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ok"), "{stdout}");
    // The client really paged: several list requests carried a page parameter.
    let paged = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/variables") && r.query.iter().any(|(k, _)| k == "page"))
        .count();
    assert!(paged >= 12, "python-gitlab followed {paged} pages");
    assert!(fake.requests().iter().any(|r| !r.authenticated));
}
