//! Interop with NLTK on the real WordNet 3.0 (Debian's `wordnet-base` at /usr/share/wordnet,
//! `.ci/apt-packages.txt`; `nltk` from `.ci/requirements.txt`): every synset name, in
//! `all_synsets()` order, is what our reader gives. Skipped, saying so, where either is missing.

use std::path::Path;
use std::process::Command;

const SCRIPT: &str = r#"
import json, sys, warnings, os, tempfile
warnings.simplefilter("ignore")
from nltk.corpus.reader.wordnet import WordNetCorpusReader
# Debian ships no `lexnames` and NLTK would look for its own corpus to map versions: give it a
# folder of links plus a lexnames file, and no version mapping (this is WordNet 3.0 itself).
d = tempfile.mkdtemp()
for f in os.listdir(sys.argv[1]):
    os.symlink(os.path.join(sys.argv[1], f), os.path.join(d, f))
if not os.path.exists(os.path.join(d, "lexnames")):
    open(os.path.join(d, "lexnames"), "w").write("".join("%02d\tlex.%02d\t1\n" % (i, i) for i in range(45)))
WordNetCorpusReader.map_wn = lambda self, *a, **k: None
wn = WordNetCorpusReader(d, None)
json.dump([ss.name() for ss in wn.all_synsets()], sys.stdout)
"#;

#[test]
fn synset_names_match_nltk_on_real_wordnet() {
    let wn = Path::new("/usr/share/wordnet");
    if !wn.join("data.noun").is_file() {
        eprintln!("skipped: /usr/share/wordnet is missing (apt-get install wordnet-base)");
        return;
    }
    let out = match Command::new("python3")
        .args(["-c", SCRIPT, "/usr/share/wordnet"])
        .output()
    {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            if err.contains("No module named 'nltk'") {
                eprintln!("skipped: python3 has no nltk (pip install -r .ci/requirements.txt)");
                return;
            }
            panic!("nltk failed: {err}");
        }
        Err(e) => {
            eprintln!("skipped: no python3 ({e})");
            return;
        }
    };
    let names: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    let ours = openwit_queries::wordnet::read_source(wn).unwrap();
    assert_eq!(ours.len(), 117_659, "WordNet 3.0 has 117,659 synsets");
    assert_eq!(names.len(), ours.len());
    for (i, (n, s)) in names.iter().zip(&ours).enumerate() {
        let lemma = &n[..n.rfind('.').and_then(|j| n[..j].rfind('.')).unwrap()];
        assert_eq!(lemma, s.lemma, "synset {i}: NLTK {n}");
        let entry = n[..n.find('.').unwrap()].replace('_', " ");
        assert_eq!(entry, s.entry(), "synset {i}: NLTK {n}");
    }
}
