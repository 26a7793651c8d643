//! Reading `Cargo.lock`: the one parser for the versions provenance records (build.rs) and
//! `diff` compares. Plain `std`, so that `build.rs` includes this same file by path.

/// Every `[[package]]` of a `Cargo.lock` text as (name, version), in file order.
pub fn packages(lock: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut name = None;
    for line in lock.lines() {
        if line.starts_with("[[package]]") {
            name = None;
        } else if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim().trim_matches('"').to_string());
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take()) {
            found.push((n, v.trim().trim_matches('"').to_string()));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_and_versions_of_every_package() {
        let lock = "version = 4\n\n[[package]]\nname = \"a\"\nversion = \"1.0.0\"\n\n[[package]]\nname = \"b\"\nversion = \"0.2.1\"\nsource = \"registry\"\n\n[[package]]\nname = \"a\"\nversion = \"2.0.0\"\n";
        assert_eq!(
            packages(lock),
            [("a", "1.0.0"), ("b", "0.2.1"), ("a", "2.0.0")]
                .map(|(n, v)| (n.to_string(), v.to_string()))
        );
    }
}
