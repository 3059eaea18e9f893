//! The README stays true: its first two commands, and the Parquet schema table.

use wecom_archive::model::schema::COLUMNS_DOC;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

#[test]
fn starts_with_the_two_commands() {
    let text = readme();
    let commands: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("```sh"))
        .skip(1)
        .take(2)
        .map(|l| l.split('#').next().unwrap().trim())
        .collect();
    assert_eq!(commands, ["cargo run --release -- demo", "cargo test"]);
}

#[test]
fn documents_every_column_with_its_type() {
    let text = readme();
    for (name, ty, _) in COLUMNS_DOC {
        let row = format!("| `{name}` | {ty} |");
        assert!(
            text.contains(&row),
            "README lacks the row for {name}: {row}"
        );
    }
}
