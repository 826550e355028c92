use super::*;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Pet {
    name: String,
    note: String,
    legs: u32,
}

impl Row for Pet {
    fn columns() -> &'static [Column<Pet>] {
        const COLUMNS: &[Column<Pet>] = &[
            col("NAME", "name", Shown::Always, |p| p.name.clone()),
            col("NOTE", "note", Shown::Wide, |p| p.note.clone()),
            col("SHOUT", "", Shown::TableOnly, |p| p.name.to_uppercase()),
            col("LEGS", "legs", Shown::DataOnly, |p| p.legs.to_string()),
        ];
        COLUMNS
    }
}

fn pets() -> Vec<Pet> {
    vec![
        Pet {
            name: "rex".into(),
            note: "says \"woof\", loudly".into(),
            legs: 4,
        },
        Pet {
            name: "tweety".into(),
            note: "line one\r\nline two".into(),
            legs: 2,
        },
        Pet {
            name: "nemo".into(),
            note: String::new(),
            legs: 0,
        },
    ]
}

#[test]
fn csv_quotes_commas_quotes_and_line_breaks_and_ends_records_with_crlf() {
    assert_eq!(
        csv(&pets()),
        "name,note,legs\r\nrex,\"says \"\"woof\"\", loudly\",4\r\ntweety,\"line one\r\nline two\",2\r\nnemo,,0\r\n"
    );
    assert_eq!(csv_field("plain"), "plain");
    assert_eq!(csv_field("a,b"), "\"a,b\"");
    assert_eq!(csv_field("cr\ronly"), "\"cr\ronly\"");
    assert_eq!(csv_field("\""), "\"\"\"\"");
}

#[test]
fn tables_align_show_wide_columns_only_when_wide_and_dash_empty_cells() {
    assert_eq!(table(&pets()[..1], false), "NAME  SHOUT\nrex   REX\n");
    let wide = table(&pets(), true);
    assert_eq!(
        wide.lines().next(),
        Some("NAME    NOTE                 SHOUT")
    );
    assert_eq!(
        wide.lines().collect::<Vec<_>>()[1..],
        [
            "rex     says \"woof\", loudly  REX",
            "tweety  line one  line two   TWEETY",
            "nemo    -                    NEMO",
        ],
        "line breaks in a cell become blanks"
    );
}

#[test]
fn json_and_yaml_are_arrays_of_row_objects() {
    let json = render(&pets()[..1], OutputFormat::Json).expect("json");
    let v: serde_json::Value = serde_json::from_str(&json).expect("parses");
    assert_eq!(v[0]["legs"], 4);
    assert_eq!(v[0]["note"], "says \"woof\", loudly");
    let yaml = render(&pets()[2..], OutputFormat::Yaml).expect("yaml");
    assert_eq!(yaml, "- name: nemo\n  note: ''\n  legs: 0\n");
    assert_eq!(
        render::<Pet>(&[], OutputFormat::Json).expect("json"),
        "[]\n"
    );
}
