//! ESO's hashes, byte for byte: a Secret synced by ESO must look unchanged to Airlock (and
//! the other way round), so that a migration rewrites nothing.
//!
//! ESO hashes the text Go's `fmt.Sprintf("%+v", x)` prints for a value with SHA3-224 and
//! writes the hex digest. Go prints a map as `map[k1:v1 k2:v2]` with the keys sorted (byte
//! order, as `BTreeMap<String, _>` iterates), a string as its raw text and a `[]byte` as its
//! decimal bytes, `[1 2 3]`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sha3::{Digest, Sha3_224};

/// Hex SHA3-224 of `text`: ESO's `ObjectHash` of a value Go prints as `text`.
pub fn object_hash(text: &str) -> String {
    hex::encode(Sha3_224::digest(text.as_bytes()))
}

/// The data-hash annotation of a Secret with this `.data`.
pub fn data_hash(data: &BTreeMap<String, Vec<u8>>) -> String {
    let mut text = String::from("map[");
    for (i, (k, v)) in data.iter().enumerate() {
        if i > 0 {
            text.push(' ');
        }
        text.push_str(k);
        text.push_str(":[");
        for (j, b) in v.iter().enumerate() {
            if j > 0 {
                text.push(' ');
            }
            let _ = write!(text, "{b}");
        }
        text.push(']');
    }
    text.push(']');
    object_hash(&text)
}

/// The created-by label ESO puts on the Secrets an ExternalSecret owns.
pub fn created_by(namespace: &str, name: &str) -> String {
    object_hash(&format!("{namespace}/{name}"))
}

/// ESO's `HashMeta`: the hash of an object's labels and annotations, as Go prints the
/// struct `{annotations map[string]string; labels map[string]string}`.
pub fn meta_hash(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> String {
    object_hash(&format!(
        "{{annotations:{} labels:{}}}",
        go_string_map(annotations),
        go_string_map(labels)
    ))
}

fn go_string_map(map: &BTreeMap<String, String>) -> String {
    let entries: Vec<String> = map.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("map[{}]", entries.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(entries: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    }

    fn strings(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    // The vectors below were computed by Go 1.26 (`crypto/sha3`, `fmt.Sprintf("%+v", x)`);
    // the first two are the fixtures of ESO's own `TestObjectHash`.

    #[test]
    fn object_hash_matches_esos_string_fixture() {
        assert_eq!(
            object_hash("hello there"),
            "f78681ec611ebaeea0689bff6c7812a83ff98a7faba986d9af76c999"
        );
    }

    #[test]
    fn data_hash_matches_esos_map_fixture() {
        let d = data(&[("foo", b"value1"), ("bar", b"value2")]);
        assert_eq!(
            data_hash(&d),
            "1bed8bcbcb4547ffe19a19cd47d9078e84aa6598266d86b99f992d64"
        );
    }

    #[test]
    fn data_hash_matches_go_for_empty_odd_and_binary_data() {
        assert_eq!(
            data_hash(&BTreeMap::new()),
            "74a974446e359fb3e6baff9bd0058950e6edd0f040888d9989b0a11b"
        );
        assert_eq!(
            data_hash(&data(&[("password", b"s3cr3t")])),
            "32624ec2bbb01c19a38546e9e3c9996bce3ad67744c9550874b627b9"
        );
        assert_eq!(
            data_hash(&data(&[("b", b"2"), ("a", b"1"), ("empty", b"")])),
            "057aed75e9b8b698082afa26cb431e9e5786b8fe5acb078da99ea676"
        );
        assert_eq!(
            data_hash(&data(&[
                ("tls.crt", &[0, 255, 10, 32]),
                ("Z", b"x y"),
                ("key with: colon", b"]"),
            ])),
            "7c574f26df6ca81e8b0acf69293c474c591138cbd9339a88b2ed3e8d"
        );
    }

    #[test]
    fn created_by_matches_go_and_fits_a_label_value() {
        let label = created_by("default", "app");
        assert_eq!(
            label,
            "681d4a0ad0265d19b46750f5b00fc5b34b830c155fc5af351e695744"
        );
        assert!(label.len() <= 63);
    }

    #[test]
    fn meta_hash_matches_go() {
        assert_eq!(
            meta_hash(&BTreeMap::new(), &BTreeMap::new()),
            "f47fe3c0b255b6dd8047cdffa772587bb829efe7a1cb70febeda2eb2"
        );
        assert_eq!(
            meta_hash(&strings(&[("app", "web")]), &BTreeMap::new()),
            "2e04591e40c776c3728c23f945498e9ede3af1fb42b72508007b73bb"
        );
        let labels = strings(&[("team", "x"), ("app", "web")]);
        let annotations = strings(&[
            ("external-secrets.io/force-sync", "1700000000"),
            ("note", "a b:c"),
        ]);
        assert_eq!(
            meta_hash(&labels, &annotations),
            "481427401cde0a8c7be1c4a2386e87eb6dfda23f20b9291f4ffb4b58"
        );
    }

    #[test]
    fn data_hash_sorts_keys_by_bytes_and_prints_utf8_as_bytes() {
        let d = data(&[("B", b"1"), ("a", b""), ("\u{e9}", "\u{e9}".as_bytes())]);
        assert_eq!(
            data_hash(&d),
            "9443cbcf3aaac8a0f9677c6de249fdc70d4c3116cd2ab460dde7a64e"
        );
        assert_eq!(
            created_by("prod", "db-credentials"),
            "8c235492e700a90aa5572b84a3de429c25340a3a42d0ad3aa2f79ef8"
        );
    }
}
