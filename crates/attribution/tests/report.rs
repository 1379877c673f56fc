//! The report of `sightline attribution paths FILE.csv --json` and CSV import errors.

use std::path::PathBuf;

use sightline_attribution::models::ShapleyVariant;
use sightline_attribution::{paths_report, read_paths_csv, Error, PathsOptions};

fn example_csv() -> std::fs::File {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/paths.csv");
    std::fs::File::open(path).unwrap()
}

#[test]
fn report_has_the_contracted_shape() {
    let report = paths_report(example_csv(), &PathsOptions::default()).unwrap();
    let models = report["models"].as_object().unwrap();
    for model in [
        "first_touch",
        "last_touch",
        "last_non_direct",
        "linear",
        "time_decay",
        "position_based",
        "markov",
        "shapley",
    ] {
        for key in [model.to_owned(), format!("{model}_value")] {
            let credit = models[&key]
                .as_object()
                .unwrap_or_else(|| panic!("missing {key}"));
            assert_eq!(credit.len(), 7, "{key} has one entry per channel");
        }
        let sum: f64 = models[model]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((sum - 66.0).abs() < 1e-9, "{model} sums to {sum}");
    }
    let email = &report["variance"]["Email"];
    for key in ["mean", "std_dev", "min", "max", "cv"] {
        assert!(email[key].is_f64(), "variance.Email.{key}");
    }
    assert!(email["min"].as_f64() <= email["mean"].as_f64());
    assert!(report["variance_value"]["Email"]["std_dev"].is_f64());
    assert_eq!(report["totals"]["conversions"], 66.0);
    assert_eq!(report["totals"]["nulls"], 449.0);
    assert_eq!(report["totals"]["paths"], 10);
    assert_eq!(report["markov"]["order"], 1);
    assert_eq!(report["shapley"]["variant"], "simplified");
}

#[test]
fn options_change_the_models() {
    let options = PathsOptions {
        markov_order: 2,
        shapley_variant: ShapleyVariant::Ordered,
        ..PathsOptions::default()
    };
    let report = paths_report(example_csv(), &options).unwrap();
    assert_eq!(report["markov"]["order"], 2);
    assert!(report["shapley"]["conversions_by_position"]["Email"].is_array());
    let bad = PathsOptions {
        markov_order: 9,
        ..PathsOptions::default()
    };
    let error = paths_report(example_csv(), &bad).unwrap_err();
    assert!(error.to_string().contains("order from 1 to 4"), "{error}");
    assert!("ordered".parse::<ShapleyVariant>().is_ok());
    assert!("banzhaf".parse::<ShapleyVariant>().is_err());
}

#[test]
fn separators_spacing_and_quoting_are_tolerated() {
    let csv = "\u{feff} Path , Total_Conversions\n\"a>b\",1\n  a  >   b  ,2\n\"a > b\",3\n\n";
    let set = read_paths_csv(csv.as_bytes()).unwrap();
    assert_eq!(set.labels(), ["a", "b"]);
    assert_eq!(set.paths().len(), 3);
    assert!(set.paths().iter().all(|p| p.touches == [0, 1]));
    assert_eq!(set.total_conversions(), 6.0);
}

fn error_of(csv: &str) -> String {
    read_paths_csv(csv.as_bytes()).unwrap_err().to_string()
}

#[test]
fn bad_rows_name_the_line_and_the_fix() {
    let header = "path,total_conversions,total_conversion_value,total_null\n";
    let message = error_of(&format!("{header}a > b,1,0,0\na >> b,1,0,0\n"));
    assert!(
        message.contains("line 3") && message.contains("empty channel"),
        "{message}"
    );
    let message = error_of(&format!("{header}a,one,0,0\n"));
    assert!(
        message.contains("line 2") && message.contains("`total_conversions` is `one`"),
        "{message}"
    );
    let message = error_of(&format!("{header}a,1,-5,0\n"));
    assert!(message.contains("non-negative number"), "{message}");
    let message = error_of(&format!("{header}a,1,0,NaN\n"));
    assert!(message.contains("`total_null`"), "{message}");
    let message = error_of(&format!("{header},1,0,0\n"));
    assert!(message.contains("`path` is empty"), "{message}");
    let message = error_of(&format!("{header}a,0,12,3\n"));
    assert!(
        message.contains("value belongs to conversions"),
        "{message}"
    );
    let message = error_of("channels,conversions\na,1\n");
    assert!(message.contains("missing column `path`"), "{message}");
    let message = error_of("path,conversions\na,1\n");
    assert!(
        message.contains("missing column `total_conversions`"),
        "{message}"
    );
    let message = read_paths_csv(&b"path,total_conversions\n\xff\xfe,1\n"[..])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("line 2") && message.contains("UTF-8"),
        "{message}"
    );
    assert!(matches!(
        read_paths_csv(&b"pa\xffth,total_conversions\n"[..]),
        Err(Error::CsvSyntax { .. })
    ));
}

#[test]
fn empty_input_gives_an_empty_report() {
    let report = paths_report(
        "path,total_conversions\n".as_bytes(),
        &PathsOptions::default(),
    )
    .unwrap();
    assert_eq!(report["totals"]["paths"], 0);
    assert!(report["models"]["markov"].as_object().unwrap().is_empty());
    assert!(matches!(
        paths_report("".as_bytes(), &PathsOptions::default()),
        Err(Error::MissingColumn { .. })
    ));
}

#[test]
fn paths_built_in_code_are_checked() {
    use sightline_attribution::{AgeUnit, Path, PathSet};
    let mut set = PathSet::new(AgeUnit::Days);
    let email = set.intern("Email");
    let path = |touches: Vec<u32>, ages: Vec<f64>, conversions: f64| Path {
        touches,
        ages,
        conversions,
        value: 0.0,
        nulls: 0.0,
    };
    assert!(set.push(path(vec![email], vec![2.0], 1.0)).is_ok());
    for bad in [
        path(vec![email + 1], vec![], 1.0),
        path(vec![email], vec![1.0, 2.0], 1.0),
        path(vec![email], vec![], f64::NAN),
        path(vec![email], vec![-1.0], 1.0),
    ] {
        assert!(matches!(set.push(bad), Err(Error::InvalidPath(_))));
    }
    // A path without touches is accepted and ignored.
    assert!(set.push(path(vec![], vec![], 1.0)).is_ok());
    assert_eq!(set.paths().len(), 1);
}
