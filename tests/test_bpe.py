from gpt2lab.basics.bpe import byte_to_char, readable_token, train_bpe

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 40)


def test_byte_table_is_a_bijection_with_gpt2_markers():
    table = byte_to_char()
    assert len(table) == 256 and len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("A")] == "A"


def test_readable_tokens():
    assert readable_token("Ġhello") == " hello"
    assert readable_token("Ċ") == "\n"
    assert readable_token("<|endoftext|>") == "<|endoftext|>"
    assert readable_token("Ã©") == "é"  # two bytes of one UTF-8 character


def test_trained_tokenizer_round_trips_and_reloads(tmp_path):
    tok = train_bpe(TEXT, vocab_size=300, save_dir=tmp_path)
    assert len(tok) == 300
    ids = tok("Speak, speak. Ünïcode too")["input_ids"]
    assert tok.decode(ids) == "Speak, speak. Ünïcode too"  # byte-level: nothing is unknown
    assert len(ids) < len("Speak, speak. Ünïcode too")  # merges were learned
    assert tok.eos_token == "<|endoftext|>" and tok.convert_tokens_to_ids("<|endoftext|>") == 0
    from transformers import AutoTokenizer

    again = AutoTokenizer.from_pretrained(str(tmp_path))
    assert again("hear me speak")["input_ids"] == tok("hear me speak")["input_ids"]


def test_vocab_size_too_small():
    import pytest

    with pytest.raises(ValueError, match="at least 256"):
        train_bpe(TEXT, vocab_size=100)
