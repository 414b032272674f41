//! Tokenizers of model folders: `tokenizer.json` (any `tokenizers` model), or a WordPiece
//! `vocab.txt` alone, assembled as transformers' `BertTokenizerFast` does (BERT
//! normalizer, lowercasing per `tokenizer_config.json`'s `do_lower_case`, default true).

use std::path::{Path, PathBuf};

use tch::{Device, Tensor};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::error::{ModelError, Result};

/// A loaded tokenizer and the file it came from.
pub struct ModelTokenizer {
    pub tokenizer: Tokenizer,
    pub path: PathBuf,
}

impl std::fmt::Debug for ModelTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelTokenizer")
            .field("path", &self.path)
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

/// Files that make up a tokenizer; copied when a model is saved.
pub const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
];

impl ModelTokenizer {
    /// Finds the tokenizer of `folder`: `tokenizer.json`, else `vocab.txt`. `None` if neither.
    pub fn from_folder(folder: &Path) -> Result<Option<ModelTokenizer>> {
        let json = folder.join("tokenizer.json");
        if json.is_file() {
            let tokenizer = Tokenizer::from_file(&json).map_err(|e| ModelError::Tokenizer {
                path: json.clone(),
                message: e.to_string(),
            })?;
            return Ok(Some(ModelTokenizer { tokenizer, path: json }));
        }
        let vocab = folder.join("vocab.txt");
        if vocab.is_file() {
            return Ok(Some(Self::from_vocab_txt(&vocab, lowercase(folder))?));
        }
        Ok(None)
    }

    /// A BERT WordPiece tokenizer from `vocab.txt`.
    pub fn from_vocab_txt(vocab: &Path, lowercase: bool) -> Result<ModelTokenizer> {
        let err = |message: String| ModelError::Tokenizer {
            path: vocab.to_owned(),
            message,
        };
        let path_str = vocab.to_str().ok_or_else(|| err("path is not UTF-8".into()))?;
        let model = WordPiece::from_file(path_str)
            .unk_token("[UNK]".into())
            .build()
            .map_err(|e| err(e.to_string()))?;
        let id = |t: &str| {
            model
                .token_to_id_map(t)
                .ok_or_else(|| err(format!("vocabulary has no {t} token")))
        };
        let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
        let mut tokenizer = Tokenizer::new(model);
        tokenizer
            .with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)))
            .with_pre_tokenizer(Some(BertPreTokenizer))
            .with_post_processor(Some(BertProcessing::new(("[SEP]".into(), sep), ("[CLS]".into(), cls))));
        Ok(ModelTokenizer {
            tokenizer,
            path: vocab.to_owned(),
        })
    }

    /// Number of tokens, added tokens included (the ids it can produce).
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// Encodes a batch, padded to its longest text and truncated to `max_length` tokens:
    /// `(input_ids, attention_mask)`, both `[batch, seq]` int64 on `device`.
    pub fn encode_batch(&self, texts: &[&str], max_length: usize, device: Device) -> Result<(Tensor, Tensor)> {
        let enc_err = |e: tokenizers::Error| ModelError::Encode { message: e.to_string() };
        let mut tok = self.tokenizer.clone();
        let pad_id = tok.token_to_id("[PAD]").unwrap_or(0);
        tok.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id,
            pad_token: "[PAD]".into(),
            ..Default::default()
        }));
        tok.with_truncation(Some(TruncationParams {
            max_length,
            ..Default::default()
        }))
        .map_err(enc_err)?;
        let encodings = tok.encode_batch(texts.to_vec(), true).map_err(enc_err)?;
        let batch = encodings.len() as i64;
        let seq = encodings.first().map_or(0, |e| e.get_ids().len()) as i64;
        let ids: Vec<i64> = encodings
            .iter()
            .flat_map(|e| e.get_ids().iter().map(|&i| i as i64))
            .collect();
        let mask: Vec<i64> = encodings
            .iter()
            .flat_map(|e| e.get_attention_mask().iter().map(|&i| i as i64))
            .collect();
        let ids = Tensor::f_from_slice(&ids)?.f_view([batch, seq])?.f_to_device(device)?;
        let mask = Tensor::f_from_slice(&mask)?.f_view([batch, seq])?.f_to_device(device)?;
        Ok((ids, mask))
    }
}

trait TokenToId {
    fn token_to_id_map(&self, token: &str) -> Option<u32>;
}

impl TokenToId for WordPiece {
    fn token_to_id_map(&self, token: &str) -> Option<u32> {
        use tokenizers::Model;
        self.token_to_id(token)
    }
}

/// `do_lower_case` from `tokenizer_config.json` (default true, as BertTokenizer's).
fn lowercase(folder: &Path) -> bool {
    std::fs::read_to_string(folder.join("tokenizer_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("do_lower_case").and_then(|b| b.as_bool()))
        .unwrap_or(true)
}
