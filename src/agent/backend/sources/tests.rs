use super::*;

fn source(name: &str, products: &[&str], configuration: &str) -> PatchSource {
    PatchSource {
        name: name.into(),
        products: products.iter().map(|p| p.to_string()).collect(),
        configuration: configuration.into(),
    }
}

#[test]
fn accepted_apt_configurations() {
    for text in [
        "deb http://mirror.internal/debian bookworm main",
        "deb [trusted=yes] file:/srv/mirror bookworm-security main\n",
        "# internal mirror\n\ndeb [arch=amd64,arm64 signed-by=/usr/share/keyrings/m.gpg] https://m.example:8443/ubuntu noble-security main universe\n  deb https://m.example/ubuntu noble-updates main\n",
        "deb [ check-valid-until=no ] http://m/debian-security/ bookworm-security/updates main contrib non-free-firmware",
        "deb file:/srv/flat ./",
        "deb\thttp://m/x\tnoble\tmain",
    ] {
        validate_apt_configuration("m", text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    }
}

#[test]
fn refused_apt_configurations_name_the_line() {
    for (text, line) in [
        ("deb http://m/debian bookworm main; rm -rf /", 1),
        (
            "deb http://m/debian bookworm main\ndeb-src http://m/debian bookworm main",
            2,
        ),
        ("deb \"http://m/debian\" bookworm main", 1),
        ("deb http://m/$(id) bookworm main", 1),
        ("deb `id` bookworm main", 1),
        ("deb ftp://m/debian bookworm main", 1),
        ("deb [foo=bar] http://m/debian bookworm main", 1),
        ("deb [trusted=yes http://m/debian bookworm main", 1),
        ("deb http://m/debian", 1),
        ("Types: deb\nURIs: http://m/debian", 1),
        ("deb http://m/debian bookworm main\r", 1),
        ("deb http://m/debian bookworm main | x", 1),
        ("\n\ndeb http://m/d noble main &", 3),
    ] {
        match validate_apt_configuration("m", text) {
            Err(SourcesError::InvalidLine { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
            other => panic!("{text:?}: {other:?}"),
        }
    }
    assert!(matches!(
        validate_apt_configuration("m", "# only a comment\n"),
        Err(SourcesError::NoEntry { .. })
    ));
}

#[test]
fn sources_matching_the_product_replace_the_node_repositories() {
    let sources = vec![
        source("noble", &["Ubuntu24.04"], "deb http://m/ubuntu noble main"),
        source("all", &["Ubuntu*"], "deb http://m/ubuntu-extra noble main"),
        source("debian", &["Debian12"], "deb http://m/debian bookworm main"),
    ];
    let Repositories::Apt(apt) =
        repositories_for(&sources, "Ubuntu24.04", PackageFamily::Deb).expect("valid")
    else {
        panic!("sources expected");
    };
    assert_eq!(apt.names, vec!["noble", "all"]);
    assert!(apt.text.contains("deb http://m/ubuntu noble main\n"));
    assert!(apt.text.contains("deb http://m/ubuntu-extra noble main\n"));
    assert!(!apt.text.contains("bookworm"));
    let Repositories::Apt(older) =
        repositories_for(&sources, "ubuntu22.04", PackageFamily::Deb).expect("valid")
    else {
        panic!("the wildcard source matches, ASCII case ignored");
    };
    assert_eq!(older.names, vec!["all"]);
    assert!(!older.text.contains("ubuntu noble main"));
    assert_eq!(
        repositories_for(&sources, "Debian11", PackageFamily::Deb).expect("valid"),
        Repositories::Node
    );
    assert_eq!(
        repositories_for(&[], "Debian12", PackageFamily::Deb).expect("valid"),
        Repositories::Node
    );
}

#[test]
fn invalid_or_unsupported_sources_fail_closed() {
    let bad = vec![source("m", &["*"], "deb http://m/d bookworm main;id")];
    let e = repositories_for(&bad, "Debian12", PackageFamily::Deb).expect_err("invalid");
    assert_eq!(e.category(), "PatchSourceInvalid");
    assert!(e.to_string().contains("\"m\" line 1"), "{e}");
    let ok = vec![source("m", &["*"], "deb http://m/d bookworm main")];
    let e = repositories_for(&ok, "RedhatEnterpriseLinux9", PackageFamily::Rpm)
        .expect_err("unsupported");
    assert_eq!(e.category(), "PatchSourceUnsupported");
    // A non-matching source is never read, on any family.
    assert_eq!(
        repositories_for(&ok[..0], "RedhatEnterpriseLinux9", PackageFamily::Rpm).expect("none"),
        Repositories::Node
    );
}

#[test]
fn apt_options_point_every_file_at_the_private_directory() {
    let apt = AptSources {
        names: vec!["m".into()],
        text: "deb http://m/d bookworm main\n".into(),
    };
    assert_eq!(
        apt.apt_options(),
        vec![
            "-o",
            "Dir::Etc::SourceList=/var/lib/nodepatch/apt-sources/sources.list",
            "-o",
            "Dir::Etc::SourceParts=/var/lib/nodepatch/apt-sources/sources.list.d",
            "-o",
            "Dir::State::Lists=/var/lib/nodepatch/apt-sources/lists",
            "-o",
            "Dir::Cache::pkgcache=",
            "-o",
            "Dir::Cache::srcpkgcache=",
        ]
    );
}

#[test]
fn private_lists_count_only_after_an_update_of_the_same_sources() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = HostRoot::new(dir.path());
    let apt = AptSources {
        names: vec!["m".into()],
        text: "deb http://m/d bookworm main\n".into(),
    };
    apt.prepare(&root).expect("prepare");
    assert!(
        dir.path()
            .join("var/lib/nodepatch/apt-sources/lists/partial")
            .is_dir()
    );
    assert!(matches!(
        apt.check_lists(&root),
        Err(SourcesError::ListsStale)
    ));
    apt.mark_updated(&root).expect("stamp");
    apt.check_lists(&root).expect("current");
    let other = AptSources {
        text: "deb http://m/d trixie main\n".into(),
        ..apt.clone()
    };
    assert!(matches!(
        other.check_lists(&root),
        Err(SourcesError::ListsStale)
    ));
    apt.clear_stamp(&root).expect("clear");
    assert!(matches!(
        apt.check_lists(&root),
        Err(SourcesError::ListsStale)
    ));
}
