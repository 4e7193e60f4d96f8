//! A short human name for the device behind a `User-Agent` ("Firefox on Linux"), for the
//! session list and the sign-in history. A hint, never a security decision: the header is
//! whatever the client says.

/// "Browser on System", the browser or system alone when only one is known, the product token
/// of a non-browser client ("curl"), or "Unknown device".
pub fn describe(user_agent: &str) -> String {
    let ua = user_agent.trim();
    let browser = browser(ua);
    let system = system(ua);
    match (browser, system) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b.to_string(),
        (None, Some(s)) => format!("Browser on {s}"),
        (None, None) => product(ua).unwrap_or_else(|| "Unknown device".to_string()),
    }
}

fn browser(ua: &str) -> Option<&'static str> {
    // Order matters: most browsers also claim to be Chrome and Safari.
    const KNOWN: [(&str, &str); 11] = [
        ("Edg/", "Edge"),
        ("EdgA/", "Edge"),
        ("EdgiOS/", "Edge"),
        ("OPR/", "Opera"),
        ("SamsungBrowser/", "Samsung Internet"),
        ("Firefox/", "Firefox"),
        ("FxiOS/", "Firefox"),
        ("CriOS/", "Chrome"),
        ("Chromium/", "Chromium"),
        ("Chrome/", "Chrome"),
        ("Version/", "Safari"),
    ];
    KNOWN
        .iter()
        .find(|(token, name)| ua.contains(token) && (*name != "Safari" || ua.contains("Safari/")))
        .map(|(_, name)| *name)
}

fn system(ua: &str) -> Option<&'static str> {
    const KNOWN: [(&str, &str); 9] = [
        ("Android", "Android"),
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Windows", "Windows"),
        ("CrOS", "ChromeOS"),
        ("Macintosh", "macOS"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
        ("X11", "Unix"),
    ];
    KNOWN
        .iter()
        .find(|(token, _)| ua.contains(token))
        .map(|(_, name)| *name)
}

/// The first product token (`curl/8.5.0` → `curl`), printable ASCII only, at most 40 characters.
fn product(ua: &str) -> Option<String> {
    let first = ua.split(['/', ' ']).next()?;
    let clean: String = first
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(40)
        .collect();
    (!clean.is_empty()).then_some(clean)
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn common_browsers_get_short_names() {
        let cases = [
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
                "Firefox on Linux",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                "Chrome on Windows",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
                "Safari on iPhone",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
                "Safari on macOS",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            ("curl/8.5.0", "curl"),
            ("", "Unknown device"),
            ("\u{1}\u{2}", "Unknown device"),
        ];
        for (ua, expected) in cases {
            assert_eq!(describe(ua), expected, "{ua}");
        }
    }
}
