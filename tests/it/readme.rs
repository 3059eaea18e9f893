//! The README stays true: its first two commands, and the tables of the columns of `messages` and
//! `findings`.

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
    let findings = wecom_archive::compliance::findings::COLUMNS_DOC;
    for (name, ty, _) in COLUMNS_DOC.iter().chain(findings) {
        let row = format!("| `{name}` | {ty} |");
        assert!(
            text.contains(&row),
            "README lacks the row for {name}: {row}"
        );
    }
}
