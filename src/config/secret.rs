//! The one rule for reading a secret named by the configuration.
//!
//! Every credential the file refers to (archive, app, suite and provider secrets, suite tickets,
//! permanent codes, callback tokens and EncodingAESKeys, the SDK proxy password) is named by
//! **exactly one** of an environment variable (`…_env`) or a file (`…_file`), never written in
//! the TOML itself. The value is taken as it is, except that a file's trailing line ending is
//! dropped (editors add one); an empty value is refused, because an unset secret would otherwise
//! surface much later as a puzzling WeCom error. The raw file text is zeroized once copied.

use std::path::Path;

use super::ConfigError;
use crate::secret::Secret;

/// Where one secret comes from: `section` and `field` name it in errors (`[suite]`, `secret`).
#[derive(Debug, Clone, Copy)]
pub struct SecretRef<'a> {
    /// The section, as the user would search the file for it (`suite`, `corp ww…`).
    pub section: &'a str,
    /// The key prefix: `secret` for `secret_env` / `secret_file`.
    pub field: &'static str,
    /// The `…_env` value: an environment variable's name.
    pub env: Option<&'a str>,
    /// The `…_file` value, already resolved against the config's directory.
    pub file: Option<&'a Path>,
}

impl SecretRef<'_> {
    /// Reads the secret by the rule above.
    pub fn read(&self) -> Result<Secret, ConfigError> {
        match (self.env, self.file) {
            (Some(var), None) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
                _ => Err(ConfigError::EnvUnset {
                    section: self.section.to_owned(),
                    var: var.to_owned(),
                    field: self.field,
                }),
            },
            (None, Some(path)) => {
                let err = |reason: String| ConfigError::SecretFile {
                    section: self.section.to_owned(),
                    path: path.to_owned(),
                    field: self.field,
                    reason,
                };
                let mut raw = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
                let value = Secret::new(raw.trim_end_matches(['\r', '\n']));
                zeroize::Zeroize::zeroize(&mut raw);
                if value.is_empty() {
                    return Err(err("the file is empty".into()));
                }
                Ok(value)
            }
            _ => Err(ConfigError::SecretSource {
                section: self.section.to_owned(),
                field: self.field,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret<'a>(env: Option<&'a str>, file: Option<&'a Path>) -> SecretRef<'a> {
        SecretRef {
            section: "corp ww1",
            field: "secret",
            env,
            file,
        }
    }

    #[test]
    fn exactly_one_source() {
        assert!(matches!(
            secret(None, None).read(),
            Err(ConfigError::SecretSource { .. })
        ));
        assert!(matches!(
            secret(Some("A"), Some(Path::new("/b"))).read(),
            Err(ConfigError::SecretSource { .. })
        ));
    }

    #[test]
    fn a_file_loses_its_line_ending_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, " spaced secret \r\n").unwrap();
        assert_eq!(
            secret(None, Some(&p)).read().unwrap().expose(),
            " spaced secret "
        );
        std::fs::write(&p, "\n").unwrap();
        let e = secret(None, Some(&p)).read().unwrap_err().to_string();
        assert!(e.contains("empty") && e.contains("[corp ww1]"), "{e}");
    }

    #[test]
    fn an_unset_or_empty_variable_is_named() {
        let e = secret(Some("WECOM_ARCHIVE_TEST_SURELY_UNSET"), None)
            .read()
            .unwrap_err()
            .to_string();
        assert!(e.contains("WECOM_ARCHIVE_TEST_SURELY_UNSET"), "{e}");
    }
}
