//! The deployment files, checked as far as this machine can without a Docker engine: the
//! compose file parses and wires Relay to PostgreSQL with health checks, the systemd unit passes
//! `systemd-analyze verify`, and the Dockerfile builds the binary the way scripts/test does.

use std::path::PathBuf;
use std::process::Command;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn compose_file_parses_and_wires_relay_to_postgres() {
    let script = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))";
    let out = Command::new("python3").args(["-c", script]).arg(repo("docker-compose.yml")).output().expect("python3");
    assert!(out.status.success(), "docker-compose.yml does not parse: {}", String::from_utf8_lossy(&out.stderr));
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let relay = &c["services"]["relay"];
    let pg = &c["services"]["postgres"];
    assert!(relay["healthcheck"]["test"].is_array() && pg["healthcheck"]["test"].is_array(), "both have health checks");
    assert_eq!(relay["depends_on"]["postgres"]["condition"], "service_healthy");
    assert!(relay["environment"]["DATABASE_URL"].as_str().is_some_and(|u| u.starts_with("postgres://")));
    assert_eq!(relay["env_file"], ".env", "secrets come from an env file, not the compose file");
    assert!(pg["volumes"]
        .as_array()
        .is_some_and(|v| v.iter().any(|x| x.as_str().is_some_and(|s| s.starts_with("pgdata:")))));
    // No key material: a `v<N>:` entry followed by 44 base64 characters (32 bytes).
    let compose = read("docker-compose.yml");
    let has_key = compose.split("RELAY_MASTER_KEYS").skip(1).any(|rest| {
        let value = rest.trim_start_matches([':', '=', ' ', '"']);
        let b64 = value.split_once(':').map(|(_, k)| k).unwrap_or("");
        b64.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '+' || *c == '/').count() >= 43
    });
    assert!(!has_key, "no master key in the compose file");
}

#[test]
fn systemd_unit_is_hardened_and_verifies() {
    let unit = read("deploy/relay.service");
    for directive in
        ["NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "User=relay", "UMask=0077"]
    {
        assert!(unit.contains(directive), "relay.service lacks {directive}");
    }
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        return; // Not installed: the static checks above still ran.
    }
    // Verify a copy whose ExecStart points at a binary that exists here.
    let dir = std::env::temp_dir().join(format!("relay-unit-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let bin = relay_tests::process::relay_bin();
    let unit = unit.replace("/usr/local/bin/relay", &bin.display().to_string());
    let path = dir.join("relay.service");
    std::fs::write(&path, unit).expect("write unit");
    let out = Command::new("systemd-analyze").arg("verify").arg(&path).output().expect("systemd-analyze");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Only complaints about this unit count (not about the host's own units, user or env file).
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("relay.service"))
        .filter(|l| !l.contains("relay.env") && !l.contains("user") && !l.contains("User"))
        .collect();
    assert!(ours.is_empty(), "systemd-analyze verify: {stderr}");
}

#[test]
fn dockerfile_builds_like_scripts_test_and_runs_unprivileged() {
    let docker = read("Dockerfile");
    let script = read("scripts/test");
    let build = "cargo build --locked -p relay --bin relay";
    assert!(script.contains(build), "scripts/test builds with `{build}`");
    assert!(
        docker.contains(&build.replace("cargo build", "cargo build --release")),
        "the Dockerfile builds the same way, in release"
    );
    assert!(docker.contains("USER relay") && docker.contains("--uid 10001"), "runs as a non-root user");
    assert!(docker.contains("HEALTHCHECK"), "has a health check");
    assert!(docker.matches("FROM ").count() >= 2, "multi-stage");
    for dir in ["server", "migrations", "tests/src"] {
        assert!(docker.contains(&format!("COPY {dir} {dir}")), "copies {dir}");
        assert!(repo(dir).exists());
    }
    // Cargo resolves the whole workspace: every member's manifest must be in the image.
    let manifest = read("Cargo.toml");
    let members = manifest.lines().find(|l| l.trim_start().starts_with("members")).expect("workspace members");
    for member in members.split('"').skip(1).step_by(2) {
        assert!(
            docker.contains(&format!("COPY {member}/Cargo.toml {member}/Cargo.toml")),
            "the Dockerfile copies the manifest of workspace member {member}"
        );
    }
    let ignore = read(".dockerignore");
    assert!(ignore.lines().any(|l| l.trim() == "target") && ignore.lines().any(|l| l.trim() == ".env"));
}
