//! Operating-system detection from the host's os-release, kernel release and boot ID.

use crate::api::{OperatingSystem, OsInfo, PackageFamily};

use super::host::{HostError, HostRoot};
use super::os_release::OsRelease;

/// Errors of OS detection.
#[derive(Debug, thiserror::Error)]
pub enum OsError {
    /// Neither `/etc/os-release` nor `/usr/lib/os-release` exists under the host root.
    #[error(
        "no os-release under the host root (looked for /etc/os-release and /usr/lib/os-release)"
    )]
    NoOsRelease,
    /// os-release exists but names no ID.
    #[error("os-release has no ID= line")]
    NoId,
    /// Reading failed.
    #[error(transparent)]
    Host(#[from] HostError),
}

impl OsError {
    /// Bounded category for metrics and report reasons.
    pub fn category(&self) -> &'static str {
        match self {
            OsError::NoOsRelease => "OsReleaseMissing",
            OsError::NoId => "OsReleaseInvalid",
            OsError::Host(e) => e.category(),
        }
    }
}

/// The parsed `KEY=value` assignments of an os-release file (os-release(5)).
/// OSes that nodepatch never patches: image-based systems updated by their own operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImmutableOs {
    /// Bottlerocket (`ID=bottlerocket`).
    Bottlerocket,
    /// Flatcar Container Linux (`ID=flatcar`).
    Flatcar,
    /// Fedora CoreOS, RHCOS or another rpm-ostree system (`/run/ostree-booted`).
    Ostree,
    /// Talos Linux (`ID=talos`).
    Talos,
}

impl ImmutableOs {
    /// Human-readable name for report messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ImmutableOs::Bottlerocket => "Bottlerocket",
            ImmutableOs::Flatcar => "Flatcar Container Linux",
            ImmutableOs::Ostree => "an rpm-ostree system (Fedora CoreOS / RHCOS)",
            ImmutableOs::Talos => "Talos Linux",
        }
    }
}

/// What the agent knows about the node's OS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetectedOs {
    /// The report's view: family, id, version, pretty name, kernel.
    pub info: OsInfo,
    /// The PatchBaseline operatingSystem value, when nodepatch supports this OS.
    pub operating_system: Option<OperatingSystem>,
    /// Set when the OS is image-based and reported NotApplicable.
    pub immutable: Option<ImmutableOs>,
    /// `VERSION_CODENAME` (`bookworm`, `noble`), empty when absent.
    pub codename: String,
}

impl DetectedOs {
    /// The SSM-style product name used by the `Product` filter (`Debian12`, `Ubuntu24.04`,
    /// `RedhatEnterpriseLinux9`, `AmazonLinux2023`, …).
    pub fn product(&self) -> String {
        let version = &self.info.version_id;
        let major = version.split('.').next().unwrap_or_default();
        match self.operating_system {
            Some(OperatingSystem::Debian) => format!("Debian{major}"),
            Some(OperatingSystem::Ubuntu) => format!("Ubuntu{version}"),
            Some(OperatingSystem::RedHatEnterpriseLinux) => format!("RedhatEnterpriseLinux{major}"),
            Some(OperatingSystem::Rocky) => format!("RockyLinux{major}"),
            Some(OperatingSystem::AlmaLinux) => format!("AlmaLinux{major}"),
            Some(OperatingSystem::CentOSStream) => format!("CentOSStream{major}"),
            Some(OperatingSystem::OracleLinux) => format!("OracleLinux{major}"),
            Some(OperatingSystem::AmazonLinux2) => "AmazonLinux2".to_string(),
            Some(OperatingSystem::AmazonLinux2023) => "AmazonLinux2023".to_string(),
            Some(OperatingSystem::Fedora) => format!("Fedora{major}"),
            Some(OperatingSystem::Suse) => format!("SUSE{version}"),
            Some(OperatingSystem::OpenSUSE) => format!("OpenSUSE{version}"),
            Some(OperatingSystem::Alpine) => format!("Alpine{version}"),
            None => format!("{}{}", self.info.id, version),
        }
    }
}

/// Classify an os-release (plus whether `/run/ostree-booted` exists) into family, baseline OS
/// and immutability. Pure, so every distribution's file can be tested as a string.
pub fn classify(release: &OsRelease, ostree_booted: bool, kernel: String) -> DetectedOs {
    let id = release.id();
    let like = release.id_like();
    let version_id = release.get("VERSION_ID").unwrap_or_default().to_string();
    let immutable = match id.as_str() {
        "bottlerocket" => Some(ImmutableOs::Bottlerocket),
        "flatcar" => Some(ImmutableOs::Flatcar),
        "talos" => Some(ImmutableOs::Talos),
        _ if ostree_booted => Some(ImmutableOs::Ostree),
        _ => None,
    };
    let is_like = |name: &str| id == name || like.iter().any(|l| l == name);
    let operating_system = match id.as_str() {
        "debian" => Some(OperatingSystem::Debian),
        "ubuntu" => Some(OperatingSystem::Ubuntu),
        "rhel" => Some(OperatingSystem::RedHatEnterpriseLinux),
        "rocky" => Some(OperatingSystem::Rocky),
        "almalinux" => Some(OperatingSystem::AlmaLinux),
        "centos" => Some(OperatingSystem::CentOSStream),
        "ol" => Some(OperatingSystem::OracleLinux),
        "amzn" if version_id == "2" => Some(OperatingSystem::AmazonLinux2),
        "amzn" if version_id.starts_with("2023") => Some(OperatingSystem::AmazonLinux2023),
        "fedora" => Some(OperatingSystem::Fedora),
        "sles" | "sled" | "sle-micro" => Some(OperatingSystem::Suse),
        "alpine" => Some(OperatingSystem::Alpine),
        other if other.starts_with("opensuse") => Some(OperatingSystem::OpenSUSE),
        // Derivatives are patched with their parent's baseline only when they say so.
        _ if like.iter().any(|l| l == "ubuntu") => Some(OperatingSystem::Ubuntu),
        _ if like.iter().any(|l| l == "debian") => Some(OperatingSystem::Debian),
        _ => None,
    };
    let family = if immutable.is_some() {
        None
    } else if let Some(os) = operating_system {
        Some(os.family())
    } else if is_like("debian") || is_like("ubuntu") {
        Some(PackageFamily::Deb)
    } else if is_like("suse") {
        Some(PackageFamily::Zypper)
    } else if is_like("rhel") || is_like("fedora") || is_like("centos") {
        Some(PackageFamily::Rpm)
    } else if is_like("alpine") {
        Some(PackageFamily::Apk)
    } else {
        None
    };
    DetectedOs {
        info: OsInfo {
            family,
            id,
            version_id,
            pretty_name: release.get("PRETTY_NAME").unwrap_or_default().to_string(),
            kernel,
        },
        operating_system: if immutable.is_some() {
            None
        } else {
            operating_system
        },
        immutable,
        codename: release
            .get("VERSION_CODENAME")
            .unwrap_or_default()
            .to_string(),
    }
}

/// Detect the host's OS: os-release (`/etc/os-release`, else `/usr/lib/os-release`, resolved
/// inside the root), `/run/ostree-booted`, and the running kernel.
pub fn detect_os(root: &HostRoot) -> Result<DetectedOs, OsError> {
    let text = match root.read_optional("/etc/os-release")? {
        Some(bytes) => bytes,
        None => root
            .read_optional("/usr/lib/os-release")?
            .ok_or(OsError::NoOsRelease)?,
    };
    let release = OsRelease::parse(&String::from_utf8_lossy(&text));
    if release.id().is_empty() {
        return Err(OsError::NoId);
    }
    let ostree_booted = root.exists("/run/ostree-booted");
    Ok(classify(&release, ostree_booted, running_kernel(root)))
}

/// Release of the running kernel. The kernel is shared by every container on the node, so the
/// host's `/proc/sys/kernel/osrelease` (through the root when its /proc is mounted) and our own
/// agree; our own is the fallback when the root has no /proc (test roots).
pub fn running_kernel(root: &HostRoot) -> String {
    read_proc_value(root, "/proc/sys/kernel/osrelease")
}

/// The boot ID of the running kernel (`/proc/sys/kernel/random/boot_id`): changes on every boot.
pub fn boot_id(root: &HostRoot) -> String {
    read_proc_value(root, "/proc/sys/kernel/random/boot_id")
}

fn read_proc_value(root: &HostRoot, path: &str) -> String {
    let from_root = root
        .read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    from_root
        .or_else(|| {
            std::fs::read_to_string(path)
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";
    const UBUNTU: &str = "PRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nVERSION_CODENAME=noble\nID=ubuntu\nID_LIKE=debian\n";
    const BOTTLEROCKET: &str = "NAME=Bottlerocket\nID=bottlerocket\nVERSION=\"1.20.0 (aws-k8s-1.29)\"\nPRETTY_NAME=\"Bottlerocket OS 1.20.0 (aws-k8s-1.29)\"\nVARIANT_ID=aws-k8s-1.29\nVERSION_ID=1.20.0\n";
    const FCOS: &str = "NAME=\"Fedora Linux\"\nVERSION=\"40.20240920.3.0 (CoreOS)\"\nID=fedora\nVERSION_ID=40\nVARIANT_ID=coreos\nPRETTY_NAME=\"Fedora CoreOS 40.20240920.3.0\"\n";

    #[test]
    fn debian_is_deb_family() {
        let os = classify(&OsRelease::parse(DEBIAN), false, "6.1.0-18-amd64".into());
        assert_eq!(os.info.family, Some(PackageFamily::Deb));
        assert_eq!(os.info.id, "debian");
        assert_eq!(os.info.version_id, "12");
        assert_eq!(os.info.pretty_name, "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(os.operating_system, Some(OperatingSystem::Debian));
        assert_eq!(os.codename, "bookworm");
        assert_eq!(os.product(), "Debian12");
        assert!(os.immutable.is_none());
    }

    #[test]
    fn ubuntu_product_keeps_the_point_release() {
        let os = classify(&OsRelease::parse(UBUNTU), false, String::new());
        assert_eq!(os.operating_system, Some(OperatingSystem::Ubuntu));
        assert_eq!(os.product(), "Ubuntu24.04");
    }

    #[test]
    fn image_based_systems_are_immutable_without_family() {
        let br = classify(&OsRelease::parse(BOTTLEROCKET), false, String::new());
        assert_eq!(br.immutable, Some(ImmutableOs::Bottlerocket));
        assert_eq!(br.info.family, None);
        assert_eq!(br.info.version_id, "1.20.0");
        let fcos = classify(&OsRelease::parse(FCOS), true, String::new());
        assert_eq!(fcos.immutable, Some(ImmutableOs::Ostree));
        assert_eq!(fcos.operating_system, None);
        let fedora = classify(&OsRelease::parse(FCOS), false, String::new());
        assert_eq!(fedora.operating_system, Some(OperatingSystem::Fedora));
        for id in ["flatcar", "talos"] {
            let os = classify(
                &OsRelease::parse(&format!("ID={id}\n")),
                false,
                String::new(),
            );
            assert!(os.immutable.is_some(), "{id}");
        }
    }

    #[test]
    fn rpm_and_other_families() {
        let cases = [
            (
                "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\n",
                Some(PackageFamily::Rpm),
                Some(OperatingSystem::Rocky),
            ),
            (
                "ID=\"amzn\"\nVERSION_ID=\"2023\"\n",
                Some(PackageFamily::Rpm),
                Some(OperatingSystem::AmazonLinux2023),
            ),
            (
                "ID=\"amzn\"\nVERSION_ID=\"2\"\n",
                Some(PackageFamily::Rpm),
                Some(OperatingSystem::AmazonLinux2),
            ),
            (
                "ID=\"sles\"\nVERSION_ID=\"15.6\"\n",
                Some(PackageFamily::Zypper),
                Some(OperatingSystem::Suse),
            ),
            (
                "ID=\"opensuse-leap\"\nVERSION_ID=\"15.6\"\n",
                Some(PackageFamily::Zypper),
                Some(OperatingSystem::OpenSUSE),
            ),
            (
                "ID=alpine\nVERSION_ID=3.20.3\n",
                Some(PackageFamily::Apk),
                Some(OperatingSystem::Alpine),
            ),
            (
                "ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n",
                Some(PackageFamily::Deb),
                Some(OperatingSystem::Ubuntu),
            ),
            ("ID=arch\n", None, None),
        ];
        for (text, family, os) in cases {
            let detected = classify(&OsRelease::parse(text), false, String::new());
            assert_eq!(detected.info.family, family, "{text}");
            assert_eq!(detected.operating_system, os, "{text}");
        }
    }

    #[test]
    fn quoting_and_comments() {
        let r = OsRelease::parse(
            "# comment\nA='single \"q\"'\nB=\"esc \\\"x\\\" \\$y\"\nbad line\n=novalue\nC=plain\n",
        );
        assert_eq!(r.get("A"), Some("single \"q\""));
        assert_eq!(r.get("B"), Some("esc \"x\" $y"));
        assert_eq!(r.get("C"), Some("plain"));
    }

    #[test]
    fn detect_reads_the_root_and_falls_back_to_usr_lib() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("usr/lib")).expect("mkdir");
        std::fs::write(dir.path().join("usr/lib/os-release"), DEBIAN).expect("write");
        let root = HostRoot::new(dir.path());
        let os = detect_os(&root).expect("detect");
        assert_eq!(os.info.id, "debian");
        assert!(!os.info.kernel.is_empty());
        std::fs::create_dir_all(dir.path().join("run")).expect("mkdir");
        std::fs::write(dir.path().join("run/ostree-booted"), "").expect("write");
        assert_eq!(
            detect_os(&root).expect("detect").immutable,
            Some(ImmutableOs::Ostree)
        );
        let empty = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            detect_os(&HostRoot::new(empty.path())),
            Err(OsError::NoOsRelease)
        ));
    }
}
