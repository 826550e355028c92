//! rpm-md `updateinfo.xml`: the advisories of a repository (Red Hat's RHSA/RHBA/RHEA, Amazon's
//! ALAS, Fedora's FEDORA-…, SUSE's patches), as dnf and zypper cache them.
//!
//! One `<update type=… >` holds an `<id>`, `<severity>`, `<issued date>`/`<updated date>`,
//! `<references>` (`type="cve"`, `type="bugzilla"`, …), and a `<pkglist>` of
//! `<package name epoch version release arch>` entries, each optionally with
//! `<reboot_suggested>`. Dates appear as `YYYY-MM-DD HH:MM:SS` (Red Hat, Fedora), `YYYY-MM-DD`,
//! or seconds since the epoch (SUSE). Files are read plain or gzip-compressed; other
//! compressions are an error naming the file.

use std::io::Read;

use jiff::Timestamp;
use quick_xml::events::{BytesStart, Event};

/// `[epoch:]version-release`, the epoch left out when it is 0 or empty.
pub fn evr_string(epoch: &str, version: &str, release: &str) -> String {
    if epoch.is_empty() || epoch == "0" {
        format!("{version}-{release}")
    } else {
        format!("{epoch}:{version}-{release}")
    }
}

/// Errors of reading an updateinfo file.
#[derive(Debug, thiserror::Error)]
pub enum UpdateInfoError {
    /// The file is compressed in a way we do not read.
    #[error("{path}: unsupported compression (only plain and .gz updateinfo is read)")]
    UnsupportedCompression {
        /// The file.
        path: String,
    },
    /// gzip decompression failed.
    #[error("{path}: {source}")]
    Decompress {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Not well-formed XML.
    #[error("{path}: malformed XML at byte {position}: {message}")]
    Xml {
        /// The file.
        path: String,
        /// Byte offset.
        position: u64,
        /// The parser's message.
        message: String,
    },
}

impl UpdateInfoError {
    /// Bounded category for metrics and report reasons.
    pub fn category(&self) -> &'static str {
        match self {
            UpdateInfoError::UnsupportedCompression { .. } => "UpdateInfoUnsupportedCompression",
            UpdateInfoError::Decompress { .. } | UpdateInfoError::Xml { .. } => {
                "UpdateInfoMalformed"
            }
        }
    }
}

/// One package of an advisory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdvisoryPackage {
    /// Package name.
    pub name: String,
    /// Epoch (`0` when absent).
    pub epoch: String,
    /// Version.
    pub version: String,
    /// Release.
    pub release: String,
    /// Architecture.
    pub arch: String,
    /// The advisory asks for a reboot after installing this package.
    pub reboot_suggested: bool,
}

impl AdvisoryPackage {
    /// `[epoch:]version-release`, the epoch left out when 0 (the form rpm versions are
    /// compared and reported in).
    pub fn evr(&self) -> String {
        evr_string(&self.epoch, &self.version, &self.release)
    }
}

/// One advisory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Advisory {
    /// Advisory id (`RHSA-2024:1234`).
    pub id: String,
    /// `type` attribute: `security`, `bugfix`, `enhancement`, `newpackage`, … (SUSE:
    /// `recommended`, `optional`, `feature`).
    pub kind: String,
    /// `<severity>` as written (`Critical`, `Important`, `Moderate`, `Low`, `Medium`), if any.
    pub severity: Option<String>,
    /// `<issued date>`.
    pub issued: Option<Timestamp>,
    /// `<updated date>`.
    pub updated: Option<Timestamp>,
    /// CVE ids from `<reference type="cve">`.
    pub cves: Vec<String>,
    /// Bugzilla ids from `<reference type="bugzilla">`.
    pub bugzillas: Vec<String>,
    /// `<title>`.
    pub title: String,
    /// The packages the advisory updates to.
    pub packages: Vec<AdvisoryPackage>,
}

impl Advisory {
    /// The classification in the baseline's spelling: the type with a capital first letter
    /// (`Security`, `Bugfix`, `Enhancement`, `Newpackage`, `Recommended`).
    pub fn classification(&self) -> Option<String> {
        capitalize(&self.kind)
    }

    /// SSM's release date: `updated` when present, else `issued`.
    pub fn release_date(&self) -> Option<Timestamp> {
        self.updated.or(self.issued)
    }
}

/// `word` with its first letter upper-case and the rest lower-case; `None` when empty.
pub fn capitalize(word: &str) -> Option<String> {
    let word = word.trim();
    let mut chars = word.chars();
    let first = chars.next()?;
    Some(
        first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
    )
}

/// Parse an updateinfo date: `YYYY-MM-DD HH:MM:SS` (UTC), `YYYY-MM-DD`, RFC 3339, or seconds
/// since the epoch. `None` for anything else (and for `0`, which SUSE writes for "unknown").
pub fn parse_date(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let seconds: i64 = text.parse().ok()?;
        return (seconds > 0)
            .then(|| Timestamp::from_second(seconds).ok())
            .flatten();
    }
    if let Ok(dt) = text.parse::<jiff::civil::DateTime>() {
        return dt
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp());
    }
    crate::baseline::model::parse_release_time(text).ok()
}

/// Decompress an updateinfo file by its name: `.gz`, or plain `.xml`.
pub fn decompress(path: &str, bytes: &[u8]) -> Result<Vec<u8>, UpdateInfoError> {
    if path.ends_with(".gz") {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|source| UpdateInfoError::Decompress {
                path: path.to_string(),
                source,
            })?;
        Ok(out)
    } else if path.ends_with(".xml") {
        Ok(bytes.to_vec())
    } else {
        Err(UpdateInfoError::UnsupportedCompression {
            path: path.to_string(),
        })
    }
}

/// The unescaped value of an element's attribute `name` (namespace prefix ignored).
pub fn attribute(element: &BytesStart<'_>, name: &str) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .and_then(|a| {
            quick_xml::escape::unescape(&a.value)
                .ok()
                .map(|v| v.into_owned())
        })
}

/// Append the still-escaped text of a text or entity-reference event to `raw`. quick-xml
/// reports `&amp;` inside text as an event of its own, so text is gathered until its element
/// ends and unescaped once ([`quick_xml::escape::unescape`]).
pub fn push_raw_text(raw: &mut String, event: &Event<'_>) {
    match event {
        Event::Text(t) => raw.push_str(t),
        Event::GeneralRef(r) => {
            raw.push('&');
            raw.push_str(r);
            raw.push(';');
        }
        _ => {}
    }
}

fn truthy(text: &str) -> bool {
    matches!(
        text.trim().to_ascii_lowercase().as_str(),
        "true" | "1" | "yes"
    )
}

/// Where the parser is inside an `<update>`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    None,
    Id,
    Title,
    Severity,
    RebootSuggested,
}

/// Store the text of `field` (trimmed) in the advisory being read.
fn apply_field(
    adv: &mut Advisory,
    field: Field,
    text: &str,
    in_package: bool,
    update_reboot: &mut bool,
) {
    match field {
        Field::Id => adv.id = text.to_string(),
        Field::Title => adv.title = text.to_string(),
        Field::Severity if !text.is_empty() => adv.severity = Some(text.to_string()),
        Field::RebootSuggested if truthy(text) => {
            match adv.packages.last_mut().filter(|_| in_package) {
                Some(p) => p.reboot_suggested = true,
                None => *update_reboot = true,
            }
        }
        _ => {}
    }
}

/// Parse an (uncompressed) updateinfo document. `path` only names the file in errors.
pub fn parse(path: &str, xml: &[u8]) -> Result<Vec<Advisory>, UpdateInfoError> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut advisories = Vec::new();
    let mut current: Option<Advisory> = None;
    // Update-level <reboot_suggested> (older Fedora/SUSE) applies to every package.
    let mut update_reboot = false;
    let mut in_package = false;
    let mut field = Field::None;
    // The raw text of the current field, unescaped at its end tag.
    let mut text = String::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| UpdateInfoError::Xml {
                path: path.to_string(),
                position: reader.error_position(),
                message: e.to_string(),
            })?;
        match event {
            Event::Eof => break,
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let name = e.local_name();
                match name.as_ref() {
                    "update" => {
                        current = Some(Advisory {
                            kind: attribute(e, "type").unwrap_or_default(),
                            ..Advisory::default()
                        });
                        update_reboot = false;
                    }
                    "id" if current.is_some() && !in_package && !empty => field = Field::Id,
                    "title" if current.is_some() && !in_package && !empty => field = Field::Title,
                    "severity" if current.is_some() && !empty => field = Field::Severity,
                    "issued" | "updated" => {
                        if let Some(adv) = current.as_mut() {
                            let date = attribute(e, "date").and_then(|d| parse_date(&d));
                            if name.as_ref() == "issued" {
                                adv.issued = date;
                            } else {
                                adv.updated = date;
                            }
                        }
                    }
                    "reference" => {
                        if let Some(adv) = current.as_mut() {
                            let id = attribute(e, "id").unwrap_or_default();
                            let kind = attribute(e, "type").unwrap_or_default();
                            let list = match kind.as_str() {
                                "cve" => Some(&mut adv.cves),
                                "bugzilla" => Some(&mut adv.bugzillas),
                                _ => None,
                            };
                            if let Some(list) = list
                                && !id.is_empty()
                                && !list.contains(&id)
                            {
                                list.push(id);
                            }
                        }
                    }
                    "package" => {
                        if let Some(adv) = current.as_mut() {
                            adv.packages.push(AdvisoryPackage {
                                name: attribute(e, "name").unwrap_or_default(),
                                epoch: attribute(e, "epoch")
                                    .filter(|v| !v.is_empty())
                                    .unwrap_or_else(|| "0".to_string()),
                                version: attribute(e, "version").unwrap_or_default(),
                                release: attribute(e, "release").unwrap_or_default(),
                                arch: attribute(e, "arch").unwrap_or_default(),
                                reboot_suggested: false,
                            });
                            in_package = !empty;
                        }
                    }
                    "reboot_suggested" => {
                        if empty {
                            // `<reboot_suggested/>` says nothing; only a true value counts.
                        } else {
                            field = Field::RebootSuggested;
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(_) | Event::GeneralRef(_) if field != Field::None => {
                push_raw_text(&mut text, &event);
            }
            Event::End(ref e) => {
                if field != Field::None {
                    let raw = std::mem::take(&mut text);
                    let value = quick_xml::escape::unescape(raw.trim()).map_err(|e| {
                        UpdateInfoError::Xml {
                            path: path.to_string(),
                            position: reader.buffer_position(),
                            message: e.to_string(),
                        }
                    })?;
                    if let Some(adv) = current.as_mut() {
                        apply_field(adv, field, value.trim(), in_package, &mut update_reboot);
                    }
                }
                field = Field::None;
                match e.local_name().as_ref() {
                    "package" => in_package = false,
                    "update" => {
                        if let Some(mut adv) = current.take() {
                            if update_reboot {
                                for p in &mut adv.packages {
                                    p.reboot_suggested = true;
                                }
                            }
                            if !adv.id.is_empty() {
                                advisories.push(adv);
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        buf.clear();
    }
    Ok(advisories)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<updates>
  <update from="security@redhat.com" status="final" type="security" version="4">
    <id>RHSA-2024:1234</id>
    <title>Important: glibc security update</title>
    <issued date="2024-05-01 10:00:00"/>
    <updated date="2024-05-03 00:00:00"/>
    <severity>Important</severity>
    <references>
      <reference href="https://x/CVE-2024-2961" id="CVE-2024-2961" title="CVE-2024-2961" type="cve"/>
      <reference href="https://x/1" id="2273404" title="b" type="bugzilla"/>
      <reference href="https://x/RHSA" id="RHSA-2024:1234" title="self" type="self"/>
    </references>
    <description>glibc &amp; friends</description>
    <pkglist>
      <collection short="rhel-9">
        <name>rhel-9</name>
        <package name="glibc" version="2.34" release="100.el9_4.2" epoch="0" arch="x86_64" src="glibc.src.rpm">
          <filename>glibc-2.34-100.el9_4.2.x86_64.rpm</filename>
          <reboot_suggested>True</reboot_suggested>
        </package>
        <package name="glibc-common" version="2.34" release="100.el9_4.2" arch="x86_64">
          <filename>glibc-common-2.34-100.el9_4.2.x86_64.rpm</filename>
        </package>
      </collection>
    </pkglist>
  </update>
  <update type="bugfix">
    <id>SUSE-2024-77</id>
    <title>recommended update</title>
    <issued date="1705017600"/>
    <reboot_suggested>true</reboot_suggested>
    <severity/>
    <pkglist><collection><package name="zlib" epoch="1" version="1.2" release="3" arch="noarch"/></collection></pkglist>
  </update>
</updates>"#;

    #[test]
    fn parses_red_hat_and_suse_shapes() {
        let advisories = parse("sample", SAMPLE.as_bytes()).expect("parses");
        assert_eq!(advisories.len(), 2);
        let rhsa = &advisories[0];
        assert_eq!(rhsa.id, "RHSA-2024:1234");
        assert_eq!(rhsa.classification().as_deref(), Some("Security"));
        assert_eq!(rhsa.severity.as_deref(), Some("Important"));
        assert_eq!(rhsa.cves, vec!["CVE-2024-2961".to_string()]);
        assert_eq!(rhsa.bugzillas, vec!["2273404".to_string()]);
        assert_eq!(
            rhsa.release_date(),
            Some("2024-05-03T00:00:00Z".parse().expect("ts")),
            "updated wins over issued"
        );
        assert_eq!(
            rhsa.issued,
            Some("2024-05-01T10:00:00Z".parse().expect("ts"))
        );
        assert_eq!(rhsa.packages.len(), 2);
        assert!(rhsa.packages[0].reboot_suggested);
        assert!(!rhsa.packages[1].reboot_suggested);
        assert_eq!(rhsa.packages[1].epoch, "0", "missing epoch is 0");
        assert_eq!(rhsa.packages[0].evr(), "2.34-100.el9_4.2");
        let suse = &advisories[1];
        assert_eq!(suse.severity, None);
        assert_eq!(suse.classification().as_deref(), Some("Bugfix"));
        assert_eq!(
            suse.release_date(),
            Some(Timestamp::from_second(1705017600).expect("ts"))
        );
        assert!(
            suse.packages[0].reboot_suggested,
            "update-level flag applies to packages"
        );
        assert_eq!(suse.packages[0].evr(), "1:1.2-3");
    }

    #[test]
    fn escaped_text_and_attributes_are_read_whole() {
        // quick-xml reports `&amp;` in text as an event of its own: the title must still be
        // one string, unescaped once, and whitespace around the text trimmed.
        let xml = br#"<updates><update type="security">
            <id> RHSA-2024:7 </id>
            <title>
              Important: glibc security &amp; bug fix &#8211; update
            </title>
            <severity>Important</severity>
            <pkglist><collection>
              <package name="np&amp;x" epoch="0" version="1" release="2" arch="noarch"/>
            </collection></pkglist>
        </update></updates>"#;
        let advisories = parse("x", xml).expect("parses");
        assert_eq!(advisories.len(), 1);
        assert_eq!(advisories[0].id, "RHSA-2024:7");
        assert_eq!(
            advisories[0].title,
            "Important: glibc security & bug fix \u{2013} update"
        );
        assert_eq!(advisories[0].packages[0].name, "np&x");
        assert!(matches!(
            parse(
                "bad",
                b"<updates><update><id>a&nosuch;</id></update></updates>"
            ),
            Err(UpdateInfoError::Xml { .. })
        ));
    }

    #[test]
    fn dates_and_compression() {
        assert_eq!(parse_date("0"), None);
        assert_eq!(
            parse_date("2024-01-02"),
            Some("2024-01-02T00:00:00Z".parse().expect("ts"))
        );
        assert_eq!(parse_date("yesterday"), None);
        let mut gz = Vec::new();
        {
            use std::io::Write as _;
            let mut enc = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::fast());
            enc.write_all(SAMPLE.as_bytes()).expect("gz");
            enc.finish().expect("gz");
        }
        let plain = decompress("x-updateinfo.xml.gz", &gz).expect("gunzip");
        assert_eq!(parse("x", &plain).expect("parse").len(), 2);
        assert!(matches!(
            decompress("x-updateinfo.xml.zst", b""),
            Err(UpdateInfoError::UnsupportedCompression { .. })
        ));
        assert!(matches!(
            parse("bad", b"<updates><update type='x'><id>a</updates>"),
            Err(UpdateInfoError::Xml { .. })
        ));
    }
}
