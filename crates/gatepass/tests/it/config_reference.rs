//! The configuration reference (`docs/configuration.md`) and `.env.example` must describe
//! every setting `gatepass serve` accepts, with the default the binary really uses: this
//! reads the settings from the command-line definition itself, so a new flag without
//! documentation, or a changed default, fails here.

use clap::CommandFactory;
use gatepass::cli::Cli;
use std::path::Path;

struct Setting {
    env: String,
    flag: String,
    default: Option<String>,
}

fn serve_settings() -> Vec<Setting> {
    let cli = Cli::command();
    let serve = cli.find_subcommand("serve").expect("the serve command exists");
    let settings: Vec<Setting> = serve
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_str()?.to_owned();
            let flag = format!("--{}", arg.get_long()?);
            let default = arg.get_default_values().first().and_then(|v| v.to_str()).map(str::to_owned);
            Some(Setting { env, flag, default })
        })
        .collect();
    assert!(settings.len() > 30, "expected every serve setting, found {}", settings.len());
    settings
}

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_setting_is_in_the_configuration_reference_with_its_real_default() {
    let doc = read("docs/configuration.md");
    let mut missing = Vec::new();
    for s in serve_settings() {
        let prefix = format!("| `{}` | `{}` | ", s.env, s.flag);
        let Some(row) = doc.lines().find(|line| line.starts_with(&prefix)) else {
            missing.push(format!("{}: no row starting with {prefix:?}", s.env));
            continue;
        };
        if let Some(default) = &s.default {
            let default_cell = row[prefix.len()..].split(" | ").next().unwrap_or_default();
            if default_cell != format!("`{default}`") {
                missing.push(format!("{}: default is `{default}` but the reference says {default_cell}", s.env));
            }
        }
    }
    assert!(missing.is_empty(), "docs/configuration.md is out of date:\n{}", missing.join("\n"));
}

#[test]
fn every_setting_is_in_env_example() {
    let example = read(".env.example");
    let missing: Vec<String> = serve_settings()
        .into_iter()
        .filter(|s| !example.lines().any(|line| line.trim_start_matches('#').starts_with(&format!("{}=", s.env))))
        .map(|s| s.env)
        .collect();
    assert!(missing.is_empty(), ".env.example lacks: {missing:?}");
}

#[test]
fn the_reference_describes_no_setting_the_binary_does_not_have() {
    let known: Vec<String> = serve_settings().into_iter().map(|s| s.env).collect();
    let doc = read("docs/configuration.md");
    let stale: Vec<&str> = doc
        .lines()
        .filter_map(|line| line.strip_prefix("| `GATEPASS_"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|name| !known.iter().any(|k| k == &format!("GATEPASS_{name}")))
        .collect();
    assert!(stale.is_empty(), "docs/configuration.md describes unknown settings: {stale:?}");
}
