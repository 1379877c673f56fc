//! Settings precedence through the binary: flags, then SIGHTLINE_* variables, then the
//! TOML file, then defaults.

mod common;

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sightline");

fn add_source(name: &str, config: &Path, env_data: Option<&Path>, flag_data: Option<&Path>) {
    let mut command = Command::new(BIN);
    command
        .args(["source", "add", name, "--json", "--config"])
        .arg(config)
        .env_remove("SIGHTLINE_DATA")
        .env_remove("SIGHTLINE_DATABASE_URL");
    if let Some(dir) = env_data {
        command.env("SIGHTLINE_DATA", dir);
    }
    if let Some(dir) = flag_data {
        command.arg("--data").arg(dir);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn flags_beat_environment_beat_file() {
    let temp = common::temp_dir("config-e2e");
    let root = temp.path();
    let (from_file, from_env, from_flag) = (root.join("file"), root.join("env"), root.join("flag"));
    let config = root.join("sightline.toml");
    std::fs::write(
        &config,
        format!("data = {:?}\n", from_file.display().to_string()),
    )
    .unwrap();

    add_source("a", &config, None, None);
    assert!(
        from_file.join("sightline.db").exists(),
        "the file's data dir is used"
    );
    add_source("b", &config, Some(&from_env), None);
    assert!(
        from_env.join("sightline.db").exists(),
        "the environment beats the file"
    );
    add_source("c", &config, Some(&from_env), Some(&from_flag));
    assert!(
        from_flag.join("sightline.db").exists(),
        "the flag beats the environment"
    );

    std::fs::write(&config, "listen_on = 1\n").unwrap();
    let output = Command::new(BIN)
        .args(["source", "list", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("listen_on"),
        "names the bad key"
    );
}
