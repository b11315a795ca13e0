use super::*;
use std::sync::Arc;

const FILE: &str = "mesh.yaml";

fn workload_entry(name: &str, address: &str) -> String {
    format!(
        "apiVersion: networking.sextant.dev/v1alpha1\nkind: WorkloadEntry\n\
         metadata: {{name: {name}, namespace: a}}\nspec:\n  address: {address}\n  labels: {{app: {name}}}\n"
    )
}

/// The pieces of `text` as the splitter cuts them: the text before the
/// first marker, then the text after each marker.
fn pieces(text: &str) -> Option<Vec<&str>> {
    split(text).map(|pieces| pieces.into_iter().map(|(r, _)| &text[r]).collect())
}

#[test]
fn marker_lines_cut_the_text_into_pieces() {
    assert_eq!(pieces("a: 1\n---\nb: 2\n"), Some(vec!["a: 1\n", "b: 2\n"]));
    assert_eq!(
        pieces("# note\n\n---\nb: 2"),
        Some(vec!["# note\n\n", "b: 2"])
    );
    assert_eq!(
        pieces("---\n---  \r\nb: 2\n---\t\n"),
        Some(vec!["", "", "b: 2\n", ""])
    );
    assert_eq!(pieces(""), Some(vec![""]));
    assert_eq!(pieces("---foo: 1\n"), Some(vec!["---foo: 1\n"]));
    // Indented, a marker is content of the document.
    assert_eq!(
        pieces("a: |\n  ---\n  x\n"),
        Some(vec!["a: |\n  ---\n  x\n"])
    );
}

#[test]
fn constructs_the_splitter_does_not_follow_make_the_file_parse_whole() {
    for text in [
        "%YAML 1.2\n---\na: 1\n",
        "a: 1\n...\n---\nb: 2\n",
        "--- # note\na: 1\n",
        "--- !tag\na: 1\n",
        "--- {a: 1}\n",
        // YAML's blanks are the space and the tab only.
        "--- \u{a0}\na: 1\n",
        "---\t\u{c}\na: 1\n",
        "\u{feff}a: 1\n",
        "# c\n\u{feff}\n---\na: 1\n",
        // A lone carriage return is a line break to YAML, as are NEL, LS, PS.
        "# c\r---\ra: 1\r",
        "---\n---\u{2028}a: 1\n",
        "a: 1\u{85}---\nb: 2\n",
        "a: 1\n\u{2029}",
    ] {
        assert_eq!(pieces(text), None, "{text:?}");
    }
}

/// A file whose lines end with a lone carriage return (old Mac style) is
/// one line to a splitter that cuts at line feeds only; it must still be
/// read as YAML reads it, not taken for one comment.
#[test]
fn a_file_with_carriage_returns_alone_is_read_as_yaml_reads_it() {
    let text = workload_entry("w0", "10.0.0.1").replace('\n', "\r");
    let text = format!("# the mesh\r---\r{text}");
    let (_, parsed) = ParsedText::parse(FILE, text.clone(), None);
    assert_eq!(parsed, parse_documents(FILE, &text));
    assert_eq!(parsed.objects.len(), 1, "{parsed:?}");
}

#[test]
fn an_edited_document_is_parsed_again_and_the_others_are_reused() {
    let names = ["w0", "w1", "w2"];
    let file = |second: &str| {
        names
            .iter()
            .map(|n| workload_entry(n, if *n == "w1" { second } else { "10.0.0.9" }))
            .collect::<Vec<_>>()
            .join("---\n")
    };
    let (first, before) = ParsedText::parse(FILE, file("10.0.0.1"), None);
    let (_, after) = ParsedText::parse(FILE, file("10.0.0.2"), Some(&first));
    assert_eq!(after, parse_documents(FILE, &file("10.0.0.2")));
    assert!(Arc::ptr_eq(&before.objects[0], &after.objects[0]));
    assert!(!Arc::ptr_eq(&before.objects[1], &after.objects[1]));
    assert!(Arc::ptr_eq(&before.objects[2], &after.objects[2]));

    // A document inserted before the others moves them: every document
    // after it is parsed again (its diagnostics number it anew).
    let moved = format!(
        "{}---\n{}",
        workload_entry("w9", "10.0.0.8"),
        file("10.0.0.2")
    );
    let (_, shifted) = ParsedText::parse(FILE, moved.clone(), Some(&first));
    assert_eq!(shifted, parse_documents(FILE, &moved));
    assert!(!Arc::ptr_eq(&before.objects[2], &shifted.objects[3]));
}

/// Documents the randomized test draws from: each parses differently
/// (served, warned, rejected, failing closed, skipped, empty, or making the
/// file unreadable; some messages number their document) and `n` varies its text.
fn random_document(rng: &mut fastrand::Rng, n: u32) -> String {
    match rng.u32(0..16) {
        0..=3 => workload_entry(&format!("w{}", n % 6), &format!("10.0.0.{n}")),
        4 => format!(
            "apiVersion: networking.sextant.dev/v1alpha1\nkind: WorkloadEntry\n\
             metadata: {{name: w{n}, namespace: a}}\nspec: {{address: 10.0.1.{n}, colour: blue}}\n"
        ),
        5 => format!(
            "apiVersion: networking.sextant.dev/v1alpha1\nkind: WorkloadEntry\n\
             metadata: {{name: w{n}, namespace: a}}\nspec: {{address: [{n}]}}\n"
        ),
        6 => format!(
            "apiVersion: security.sextant.dev/v1alpha1\nkind: PeerAuthentication\n\
             metadata: {{name: p{n}, namespace: a}}\nspec:\n  mtls: {{mode: SOMETIMES}}\n"
        ),
        7 => format!("apiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: x{n}}}\n"),
        8 => format!("# note {n}\n"),
        9 => String::new(),
        10 => "~\n".to_string(),
        11 => format!("apiVersion: v1\nmetadata: {{name: nokind{n}}}\n"),
        12 => format!("a: [1, {n}\n"),
        // A warning that numbers its document.
        13 | 14 => format!(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: g{n}, namespace: a}}\n"
        ),
        _ => format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: s{n}, namespace: a}}\n\
             spec:\n  ports:\n  - {{port: .nan}}\n"
        ),
    }
}

/// A separator line, mostly `---`, sometimes one the splitter declines.
fn random_separator(rng: &mut fastrand::Rng) -> &'static str {
    match rng.u32(0..40) {
        0 => "--- # next\n",
        1 => "...\n---\n",
        2 => "---\t\r\n",
        3 => "---   \n",
        // Not YAML blanks after the marker.
        4 => "--- \u{a0}\n",
        5 => "---\t\u{b}\n",
        6 => "\u{feff}\n---\n",
        // Line breaks YAML knows and the splitter does not cut at.
        7 => "---\u{2028}",
        8 => "\u{85}---\n",
        _ => "---\n",
    }
}

fn render(rng: &mut fastrand::Rng, documents: &[String]) -> String {
    // Before the first marker: nothing, comments, or what only looks blank.
    let mut text = match rng.u32(0..12) {
        0 => "\n\n",
        1 => "\u{c}\n",
        2 => "\u{a0}\n",
        3 => "# a \u{1} in a comment\n",
        4 => "~\n",
        5 => "# header\rkey: v\n",
        6..=8 => "# a file of the mesh\n",
        _ => "",
    }
    .to_string();
    for (i, document) in documents.iter().enumerate() {
        if i > 0 || rng.u32(0..4) == 0 {
            text.push_str(random_separator(rng));
        }
        text.push_str(document);
    }
    if rng.u32(0..5) == 0 {
        text.push_str("---\n");
    }
    text
}

#[test]
fn parsing_by_document_equals_parsing_the_whole_file_through_random_edits() {
    let mut by_document = 0;
    for seed in 0..60 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut docs: Vec<String> = (0..rng.usize(1..8))
            .map(|_| {
                let n = rng.u32(0..40);
                random_document(&mut rng, n)
            })
            .collect();
        let mut state: Option<ParsedText> = None;
        for step in 0..30 {
            let n = rng.u32(0..40);
            match rng.u32(0..6) {
                0 if !docs.is_empty() => {
                    let i = rng.usize(..docs.len());
                    docs.remove(i);
                }
                1 => {
                    let i = rng.usize(..=docs.len());
                    docs.insert(i, random_document(&mut rng, n));
                }
                _ if !docs.is_empty() => {
                    let i = rng.usize(..docs.len());
                    docs[i] = random_document(&mut rng, n);
                }
                _ => docs.push(random_document(&mut rng, n)),
            }
            let text = render(&mut rng, &docs);
            let whole = parse_documents(FILE, &text);
            let (next, parsed) = ParsedText::parse(FILE, text.clone(), state.as_ref());
            assert_eq!(
                parsed, whole,
                "seed {seed} step {step}: parsing by document differs from the whole file\n{text}"
            );
            assert_eq!(next.text(), text);
            by_document += usize::from(!next.documents.is_empty());
            state = Some(next);
        }
    }
    // The comparison covered the path it is about, not only the fallback.
    assert!(by_document > 200, "parsed by document {by_document} times");
}

/// The same comment, once an empty document after a marker, then the text
/// before the first marker (no document): the documents after it are
/// numbered anew.
#[test]
fn a_comment_moved_before_the_first_marker_stops_counting_as_a_document() {
    let gateway =
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g, namespace: a}\n";
    let before = format!("---\n# note\n---\n{gateway}");
    let after = format!("# note\n---\n{gateway}");
    let (state, first) = ParsedText::parse(FILE, before.clone(), None);
    assert_eq!(first, parse_documents(FILE, &before));
    let (_, second) = ParsedText::parse(FILE, after.clone(), Some(&state));
    assert_eq!(second, parse_documents(FILE, &after));
    assert!(
        second.diagnostics[0]
            .message
            .starts_with("YAML document 1 "),
        "{:?}",
        second.diagnostics
    );
}
