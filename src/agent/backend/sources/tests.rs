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
    let e = repositories_for(&ok, "Suse15.6", PackageFamily::Zypper).expect_err("unsupported");
    assert_eq!(e.category(), "PatchSourceUnsupported");
    // apt text on a dnf node is not a .repo file.
    let e = repositories_for(&ok, "RedhatEnterpriseLinux9", PackageFamily::Rpm)
        .expect_err("apt text on dnf");
    assert_eq!(e.category(), "PatchSourceInvalid");
    assert!(e.to_string().contains("\"m\" line 1"), "{e}");
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
        Err(SourcesError::ListsStale { .. })
    ));
    apt.mark_updated(&root).expect("stamp");
    apt.check_lists(&root).expect("current");
    let other = AptSources {
        text: "deb http://m/d trixie main\n".into(),
        ..apt.clone()
    };
    assert!(matches!(
        other.check_lists(&root),
        Err(SourcesError::ListsStale { .. })
    ));
    apt.clear_stamp(&root).expect("clear");
    assert!(matches!(
        apt.check_lists(&root),
        Err(SourcesError::ListsStale { .. })
    ));
}

const MIRROR_REPO: &str = "# internal mirror\n[mirror-baseos]\nname=Mirror BaseOS 9\nbaseurl=https://mirror.internal/rocky/9/BaseOS/x86_64/os/\ngpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-Rocky-9\nenabled=1\npriority=10\n\n[mirror-appstream]\nbaseurl = http://m/a/ file:///srv/a\nsslverify=false\nmodule_hotfixes=true\n";

#[test]
fn accepted_dnf_configurations() {
    assert_eq!(
        validate_dnf_configuration("m", MIRROR_REPO).expect("valid"),
        vec!["mirror-baseos", "mirror-appstream"]
    );
    for text in [
        "[np]\nbaseurl=file:///srv/np",
        "\n\n# c\n  [a.b:c_d-1]  \n\tbaseurl=file:/srv/x\n",
        "[np]\nname=\nbaseurl=http://m:8080/x%20y/\nenabled=0\ngpgcheck=no\npriority=99\n",
    ] {
        validate_dnf_configuration("m", text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    }
}

#[test]
fn refused_dnf_configurations_name_the_line() {
    for (text, line) in [
        ("[np]\nbaseurl=file:///srv/np; rm -rf /", 2),
        ("[np]\nbaseurl=https://m/$releasever/x", 2),
        ("[np]\nbaseurl=ftp://m/x", 2),
        ("[np]\nbaseurl=file:///srv/np\nmirrorlist=http://m/list", 3),
        ("[np]\nbaseurl=file:///srv/np\nexclude=kernel*", 3),
        ("[np]\nbaseurl=file:///srv/np\nsslclientkey=/root/k", 3),
        ("[np]\nbaseurl=file:///srv/np\npriority=0", 3),
        ("[np]\nbaseurl=file:///srv/np\npriority=100", 3),
        ("[np]\nbaseurl=file:///srv/np\ngpgcheck=maybe", 3),
        ("[np]\nname=\"quoted\"\nbaseurl=file:///srv/np", 2),
        ("[np]\nname=a`id`\nbaseurl=file:///srv/np", 2),
        ("[np]\r\nbaseurl=file:///srv/np", 1),
        ("[n p]\nbaseurl=file:///srv/np", 1),
        ("[np]\nbaseurl=file:///srv/np\n;comment", 3),
        ("deb http://m/debian bookworm main", 1),
        // What one regular expression per line cannot see.
        ("baseurl=file:///srv/np\n[np]\nbaseurl=file:///srv/np", 1),
        ("[main]\nbaseurl=file:///srv/np", 1),
        ("[np]\nbaseurl=file:///a\n[np]\nbaseurl=file:///b", 3),
        ("[np]\nbaseurl=file:///a\nbaseurl=file:///b", 3),
    ] {
        match validate_dnf_configuration("m", text) {
            Err(SourcesError::InvalidRepoLine { line: l, name, .. }) => {
                assert_eq!((l, name.as_str()), (line, "m"), "{text:?}")
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
    for text in [
        "# only a comment\n",
        "[np]\nname=no url\n",
        "[a]\nenabled=1\n[b]\nbaseurl=file:///b",
    ] {
        let e = validate_dnf_configuration("m", text).expect_err(text);
        assert!(
            matches!(e, SourcesError::InvalidRepo { .. }),
            "{text:?}: {e:?}"
        );
        assert_eq!(e.category(), "PatchSourceInvalid");
    }
}

#[test]
fn the_agent_and_admission_use_the_same_dnf_expressions() {
    // Admission's rules are built from the agent's expressions: the same text, so the same
    // lines pass (RE2 and Rust regex agree on this syntax).
    let rule = crate::api::sources_configuration_rule();
    assert!(rule.contains(crate::api::RPM_REPO_LINE));
    assert!(rule.contains(crate::api::APT_SOURCE_LINE));
    let os = crate::api::sources_os_rule();
    assert!(os.contains(crate::api::RPM_REPO_START));
    assert!(os.contains("'Rocky'") && os.contains("'AmazonLinux2023'") && os.contains("'Ubuntu'"));
    assert!(!os.contains("'SUSE'") && !os.contains("'Alpine'"));
    // Whole-text form of the CEL rule, evaluated with Rust regex on a valid and a refused text.
    let whole =
        Regex::new(&format!("^(({l})\n)*({l})$", l = crate::api::RPM_REPO_LINE)).expect("regex");
    assert!(whole.is_match(MIRROR_REPO) && repo_start_regex().is_match(MIRROR_REPO));
    assert!(!whole.is_match("[np]\nbaseurl=file:///x;id\n"));
    assert!(!repo_start_regex().is_match("deb http://m/d bookworm main"));
}

#[test]
fn dnf_sources_replace_the_node_repositories_in_one_repo_file() {
    let sources = vec![
        source("base", &["RockyLinux9"], MIRROR_REPO),
        source("extra", &["Rocky*"], "[extra]\nbaseurl=file:///srv/extra"),
        source("al", &["AmazonLinux2023"], "[al]\nbaseurl=file:///srv/al"),
    ];
    let Repositories::Dnf(dnf) =
        repositories_for(&sources, "RockyLinux9", PackageFamily::Rpm).expect("valid")
    else {
        panic!("dnf sources expected");
    };
    assert_eq!(dnf.names, vec!["base", "extra"]);
    assert!(dnf.text.contains(MIRROR_REPO));
    assert!(dnf.text.contains("[extra]\nbaseurl=file:///srv/extra\n"));
    assert!(!dnf.text.contains("[al]"));
    assert_eq!(
        dnf.dnf_options(),
        vec![
            "--setopt=reposdir=/var/lib/nodepatch/dnf-sources/repos.d",
            "--setopt=cachedir=/var/lib/nodepatch/dnf-sources/cache",
            "--setopt=skip_if_unavailable=False",
        ]
    );
    // A repository id defined by two matching sources is refused, naming the second.
    let twice = vec![
        source("one", &["*"], "[np]\nbaseurl=file:///a"),
        source("two", &["*"], "[np]\nbaseurl=file:///b"),
    ];
    let e = repositories_for(&twice, "RockyLinux9", PackageFamily::Rpm).expect_err("twice");
    assert!(e.to_string().contains("\"two\""), "{e}");
}

#[test]
fn the_private_dnf_cache_counts_only_after_a_refresh_of_the_same_sources() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = HostRoot::new(dir.path());
    let dnf = DnfSources {
        names: vec!["m".into()],
        text: "[np]\nbaseurl=file:///a\n".into(),
    };
    std::fs::create_dir_all(dir.path().join("var/lib/nodepatch/dnf-sources/repos.d"))
        .expect("mkdir");
    std::fs::write(
        dir.path()
            .join("var/lib/nodepatch/dnf-sources/repos.d/left-over.repo"),
        "[x]\nbaseurl=file:///x\n",
    )
    .expect("write");
    dnf.prepare_refresh(&root).expect("prepare");
    assert_eq!(
        root.list_dir(DNF_REPOS_DIR).expect("list"),
        vec!["nodepatch-sources.repo"],
        "the reposdir holds the sources' file only"
    );
    assert!(matches!(
        dnf.check_cache(&root),
        Err(SourcesError::ListsStale { .. })
    ));
    dnf.mark_refreshed(&root).expect("stamp");
    dnf.check_cache(&root).expect("current");
    let cached = dir
        .path()
        .join("var/lib/nodepatch/dnf-sources/cache/np-0123456789abcdef");
    std::fs::create_dir_all(&cached).expect("mkdir");
    // The same sources again keep their cache; other sources start from an empty one.
    dnf.prepare_refresh(&root).expect("prepare");
    assert!(cached.is_dir());
    let other = DnfSources {
        text: "[np]\nbaseurl=file:///b\n".into(),
        ..dnf.clone()
    };
    assert!(matches!(
        other.check_cache(&root),
        Err(SourcesError::ListsStale { .. })
    ));
    other.prepare_refresh(&root).expect("prepare");
    assert!(!cached.exists(), "a cache of other sources is removed");
    assert!(matches!(
        dnf.check_cache(&root),
        Err(SourcesError::ListsStale { .. })
    ));
}
