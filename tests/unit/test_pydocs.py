from llmexp.data.corpus import split_of
from llmexp.data.pydocs import PydocsCorpus, module_docstrings


def test_corpus_has_both_parts_and_disjoint_deterministic_splits():
    corpus = PydocsCorpus(val_fraction=0.05)
    train = [d.doc_id for d in corpus.documents("train")]
    val = [d.doc_id for d in corpus.documents("val")]
    assert any(i.startswith("topic:") for i in train) and any(i.startswith("module:") for i in train)
    assert val and not set(train) & set(val)
    assert len(val) < len(train) / 5
    assert [d.doc_id for d in PydocsCorpus(val_fraction=0.05).documents("val")] == val


def test_corpus_contains_the_language_reference():
    texts = {d.doc_id: d.text for split in ("train", "val") for d in PydocsCorpus().documents(split)}
    assert 'The "for" statement' in texts["topic:for"]
    assert sum(len(t) for t in texts.values()) > 1_000_000


def test_split_is_a_pure_function_of_the_id():
    assert split_of("module:json", 0.5) == split_of("module:json", 0.5)
    shares = [split_of(f"doc{i}", 0.1) for i in range(5000)]
    assert 0.07 < shares.count("val") / len(shares) < 0.13


def test_docstrings_are_read_without_importing(tmp_path):
    source = tmp_path / "boom.py"
    source.write_text(
        '"""Module doc."""\nraise SystemExit("imported!")\n'
        'class A:\n    """Class doc."""\n    def f(self):\n        """Method doc."""\n'
    )
    text = module_docstrings(source, "boom")
    assert text == "boom\nModule doc.\n\nboom.A\nClass doc.\n\nboom.A.f\nMethod doc.\n"
