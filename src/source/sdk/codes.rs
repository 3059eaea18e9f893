//! The SDK's return codes and the `errcode`s of its JSON envelope, stated once (`archive.md`
//! §2.4): what each means, what to do about it, and whether it is worth retrying.
//!
//! Both paths read this table: pages (`GetChatData`, [`super::SdkError`]) and media chunks
//! (`GetMediaData`, [`crate::source::media::ChunkError`]), so a code reads the same in a failed
//! pull and in a failed download.

use std::fmt;

/// How a caller treats a return code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// May pass when retried after a backoff (network, parse and system errors).
    Retryable,
    /// The data asked for is not there and will not come back (a bad sdkfileid, records past
    /// the retention window): never retried, in this run or later.
    Gone,
    /// A configuration or usage error: retrying does not help until something is fixed.
    Fatal,
}

/// One SDK return code.
#[derive(Debug)]
pub struct SdkCode {
    /// The return code.
    pub code: i32,
    /// What it means, in a few words.
    pub meaning: &'static str,
    /// What to fix or what it means for the caller; empty when there is nothing to add.
    pub hint: &'static str,
    /// Whether to retry.
    pub class: Class,
}

/// `10000`: a parameter error (also what we answer for parameters the SDK could not even take,
/// such as strings with interior NULs).
pub const PARAMETER_ERROR: i32 = 10000;
/// `10003`: a system error (also what we answer when the SDK cannot allocate its buffers).
pub const SYSTEM_ERROR: i32 = 10003;

const RETRIED: &str = "retried with backoff; check the network and the proxy setting";

/// Every return code of the SDK.
pub const CODES: &[SdkCode] = &[
    SdkCode {
        code: PARAMETER_ERROR,
        meaning: "invalid parameters",
        hint: "check corp_id, the archive secret and the page size (at most 1000)",
        class: Class::Fatal,
    },
    SdkCode {
        code: 10001,
        meaning: "network error",
        hint: RETRIED,
        class: Class::Retryable,
    },
    SdkCode {
        code: 10002,
        meaning: "response parse error",
        hint: RETRIED,
        class: Class::Retryable,
    },
    SdkCode {
        code: SYSTEM_ERROR,
        meaning: "system error",
        hint: RETRIED,
        class: Class::Retryable,
    },
    SdkCode {
        code: 10004,
        meaning: "key error",
        hint: "check the archive secret and the key pair registered in the admin console",
        class: Class::Fatal,
    },
    SdkCode {
        code: 10005,
        meaning: "bad sdkfileid",
        hint: "WeCom does not know this file, or it expired",
        class: Class::Gone,
    },
    SdkCode {
        code: 10006,
        meaning: "decrypt failed",
        hint: "",
        class: Class::Fatal,
    },
    SdkCode {
        code: 10007,
        meaning: "no private key for the message's key version",
        hint: "",
        class: Class::Fatal,
    },
    SdkCode {
        code: 10008,
        meaning: "bad encrypt_key",
        hint: "",
        class: Class::Fatal,
    },
    SdkCode {
        code: 10009,
        meaning: "caller IP not allowed",
        hint: "add this machine's egress IP to the archive's trusted IPs (管理工具→会话内容存档)",
        class: Class::Fatal,
    },
    SdkCode {
        code: 10010,
        meaning: "data expired",
        hint: "past WeCom's retention window, it will not come back; pull and download media \
               more often",
        class: Class::Gone,
    },
    SdkCode {
        code: 10011,
        meaning: "certificate error",
        hint: "the SDK's certificate check failed; check the system clock and any TLS proxy",
        class: Class::Fatal,
    },
];

/// The row of `code`, if the SDK documents it.
pub fn lookup(code: i32) -> Option<&'static SdkCode> {
    CODES.iter().find(|c| c.code == code)
}

/// How to treat `code`; undocumented codes are [`Class::Fatal`].
pub fn class(code: i32) -> Class {
    lookup(code).map_or(Class::Fatal, |c| c.class)
}

/// Whether `code` may pass when retried (10001–10003: network, parse, system).
pub fn is_retryable(code: i32) -> bool {
    class(code) == Class::Retryable
}

/// `code` and what it means, for error messages: `10009 (caller IP not allowed): add …`.
pub fn describe(code: i32) -> Described {
    Described(code)
}

/// A return code with its meaning and hint; see [`describe`].
#[derive(Debug, Clone, Copy)]
pub struct Described(i32);

impl fmt::Display for Described {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match lookup(self.0) {
            None => write!(f, "{} (unknown code)", self.0),
            Some(c) if c.hint.is_empty() => write!(f, "{} ({})", c.code, c.meaning),
            Some(c) => write!(f, "{} ({}): {}", c.code, c.meaning, c.hint),
        }
    }
}

/// A WeCom `errcode` in the JSON envelope of a call that returned 0.
#[derive(Debug)]
pub struct EnvelopeCode {
    /// WeCom's error code.
    pub errcode: i64,
    /// What to fix; empty when WeCom's own `errmsg` says enough.
    pub hint: &'static str,
    /// Whether the page may come when asked again.
    pub retryable: bool,
}

/// The envelope `errcode`s we know something about; others are not retried and have no hint.
pub const ENVELOPE_CODES: &[EnvelopeCode] = &[
    // "system busy".
    EnvelopeCode {
        errcode: -1,
        hint: "",
        retryable: true,
    },
    EnvelopeCode {
        errcode: 48002,
        hint: "use the 会话内容存档 Secret, not an app secret, and check the archive is enabled",
        retryable: false,
    },
    EnvelopeCode {
        errcode: 301042,
        hint: "add this machine's egress IP to the archive's trusted IPs",
        retryable: false,
    },
    EnvelopeCode {
        errcode: 40001,
        hint: "check corp_id and the archive secret",
        retryable: false,
    },
    EnvelopeCode {
        errcode: 40013,
        hint: "check corp_id and the archive secret",
        retryable: false,
    },
];

fn envelope(errcode: i64) -> Option<&'static EnvelopeCode> {
    ENVELOPE_CODES.iter().find(|c| c.errcode == errcode)
}

/// Whether a page whose envelope carries `errcode` may come when asked again.
pub fn is_retryable_errcode(errcode: i64) -> bool {
    envelope(errcode).is_some_and(|c| c.retryable)
}

/// What to fix for an envelope `errcode`, as a suffix for error messages: ` (…)`, or nothing.
pub fn errcode_hint(errcode: i64) -> ErrcodeHint {
    ErrcodeHint(envelope(errcode).map_or("", |c| c.hint))
}

/// The hint of an envelope `errcode`; see [`errcode_hint`].
#[derive(Debug, Clone, Copy)]
pub struct ErrcodeHint(&'static str);

impl fmt::Display for ErrcodeHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, " ({})", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_classes() {
        for code in [10001, 10002, 10003] {
            assert!(is_retryable(code));
        }
        for code in [10000, 10004, 10009, 10010, 10011, 10005, 42] {
            assert!(!is_retryable(code));
        }
        assert_eq!(class(10005), Class::Gone);
        assert_eq!(class(10010), Class::Gone);
        assert!(is_retryable_errcode(-1));
        assert!(!is_retryable_errcode(48002) && !is_retryable_errcode(7));
    }

    #[test]
    fn each_code_is_stated_once() {
        for (i, c) in CODES.iter().enumerate() {
            assert!(CODES[..i].iter().all(|d| d.code != c.code), "{}", c.code);
        }
        for (i, c) in ENVELOPE_CODES.iter().enumerate() {
            let dup = ENVELOPE_CODES[..i].iter().any(|d| d.errcode == c.errcode);
            assert!(!dup, "{}", c.errcode);
        }
    }

    #[test]
    fn descriptions() {
        assert_eq!(
            describe(10001).to_string(),
            "10001 (network error): retried with backoff; check the network and the proxy setting"
        );
        assert_eq!(describe(10006).to_string(), "10006 (decrypt failed)");
        assert_eq!(describe(42).to_string(), "42 (unknown code)");
        assert_eq!(errcode_hint(7).to_string(), "");
        assert_eq!(
            errcode_hint(40013).to_string(),
            " (check corp_id and the archive secret)"
        );
    }
}
