"""The UTMOS22 "strong learner" network (Saeki et al. 2022), for inference only.

Ported from tarepan/SpeechMOS v1.2.0 (``speechmos/utmos22``; MIT licence, Copyright 2023 tarepan), itself
derived from sarulab-speech/UTMOS22 (MIT, Saruwatari & Koyama laboratory, The University of Tokyo) and
fairseq's wav2vec 2.0 (MIT, Facebook, Inc. and its affiliates). Kept here rather than fetched with
``torch.hub.load`` so no downloaded code runs and the architecture can be built offline (tests); module
and parameter names are SpeechMOS's, so its released checkpoint loads with ``strict=True``.
Only the weights are downloaded (``engines.scoring.mos``).
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SR = 16000  # the rate the network works at


class UTMOS22Strong(nn.Module):
    """wav2vec 2.0 base features + data-domain/judge embeddings -> BLSTM -> frame scores -> utterance MOS."""

    def __init__(self) -> None:
        super().__init__()
        feat_ssl, feat_domain_emb, feat_judge_emb, feat_rnn_h, feat_proj_h = 768, 128, 128, 512, 2048
        feat_cat = feat_ssl + feat_domain_emb + feat_judge_emb
        self.wav2vec2 = Wav2Vec2Model()
        self.domain_emb = nn.Parameter(data=torch.empty(1, feat_domain_emb), requires_grad=False)
        self.judge_emb = nn.Parameter(data=torch.empty(1, feat_judge_emb), requires_grad=False)
        self.blstm = nn.LSTM(input_size=feat_cat, hidden_size=feat_rnn_h, batch_first=True, bidirectional=True)
        self.projection = nn.Sequential(nn.Linear(feat_rnn_h * 2, feat_proj_h), nn.ReLU(), nn.Linear(feat_proj_h, 1))

    def forward(self, wave: Tensor) -> Tensor:
        """(B, T) waveform at 16 kHz -> (B,) predicted MOS."""
        units = self.wav2vec2(wave)
        bsz, frm, _ = units.size()
        domain = self.domain_emb.unsqueeze(1).expand(bsz, frm, -1)
        judge = self.judge_emb.unsqueeze(1).expand(bsz, frm, -1)
        frames = self.projection(self.blstm(torch.cat([units, domain, judge], dim=2))[0])
        return frames.mean(dim=1).squeeze(1) * 2 + 3


class Wav2Vec2Model(nn.Module):
    """wav2vec 2.0 base: convolutional feature encoder + 12-layer post-LN transformer."""

    def __init__(self) -> None:
        super().__init__()
        feat_h1, feat_h2 = 512, 768
        layers = [(feat_h1, 10, 5)] + [(feat_h1, 3, 2)] * 4 + [(feat_h1, 2, 2)] * 2
        self.feature_extractor = ConvFeatureExtractionModel(layers)
        self.layer_norm = nn.LayerNorm(feat_h1)
        self.post_extract_proj = nn.Linear(feat_h1, feat_h2)
        self.dropout_input = nn.Dropout(0.1)
        self.encoder = TransformerEncoder(feat_h2)
        self.mask_emb = nn.Parameter(torch.FloatTensor(feat_h2))  # unused at inference; in the checkpoint

    def forward(self, source: Tensor) -> Tensor:
        features = self.feature_extractor(source).transpose(1, 2)
        return self.encoder(self.post_extract_proj(self.layer_norm(features)))


class ConvFeatureExtractionModel(nn.Module):
    def __init__(self, conv_layers: list[tuple[int, int, int]]) -> None:
        super().__init__()
        self.conv_layers = nn.ModuleList()
        in_d = 1
        for i, (dim, k, stride) in enumerate(conv_layers):
            parts: list[nn.Module] = [nn.Conv1d(in_d, dim, k, stride=stride, bias=False), nn.Dropout(p=0.0)]
            if i == 0:
                parts.append(nn.GroupNorm(dim, dim, affine=True))
            parts.append(nn.GELU())
            self.conv_layers.append(nn.Sequential(*parts))
            in_d = dim

    def forward(self, series: Tensor) -> Tensor:
        series = series.unsqueeze(1)
        for conv in self.conv_layers:
            series = conv(series)
        return series


class SamePad(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x[:, :, :-1]  # even kernel: drop the one extra frame


def pad_to_multiple(x: Tensor, multiple: int, dim: int = -1, value: float = 0) -> tuple[Tensor, int]:
    size = x.size(dim)
    remainder = math.ceil(size / multiple) * multiple - size
    if remainder == 0:
        return x, 0
    pad_offset = (0,) * (-1 - dim) * 2
    return F.pad(x, (*pad_offset, 0, remainder), value=value), remainder


class TransformerEncoder(nn.Module):
    def __init__(self, feat: int) -> None:
        super().__init__()
        self.required_seq_len_multiple = 2
        with warnings.catch_warnings():  # the old weight_norm keeps the checkpoint's weight_g / weight_v names
            warnings.simplefilter("ignore", FutureWarning)
            conv = nn.utils.weight_norm(
                nn.Conv1d(feat, feat, kernel_size=128, padding=64, groups=16), name="weight", dim=2
            )
        self.pos_conv = nn.Sequential(conv, SamePad(), nn.GELU())
        self.layer_norm = nn.LayerNorm(feat)
        self.layers = nn.ModuleList([TransformerSentenceEncoderLayer(feat, 3072, 12, 0.1, 0.1, 0.0) for _ in range(12)])

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        x = self.layer_norm(x)
        x, pad_length = pad_to_multiple(x, self.required_seq_len_multiple, dim=-2, value=0)
        padding_mask = None
        if pad_length > 0:
            padding_mask = x.new_zeros((x.size(0), x.size(1)), dtype=torch.bool)
            padding_mask[:, -pad_length:] = True
        x = x.transpose(0, 1)  # (T, B, F)
        for layer in self.layers:
            x = layer(x, padding_mask)
        x = x.transpose(0, 1)
        return x[:, :-pad_length] if pad_length > 0 else x


class TransformerSentenceEncoderLayer(nn.Module):
    """Post-LN encoder layer (attention, residual, LN; GELU FFN, residual, LN)."""

    def __init__(
        self, feat: int, ffn: int, heads: int, dropout: float, attention_dropout: float, activation_dropout: float
    ) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(feat, heads, attention_dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(activation_dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.fc1 = nn.Linear(feat, ffn)
        self.fc2 = nn.Linear(ffn, feat)
        self.self_attn_layer_norm = nn.LayerNorm(feat)
        self.final_layer_norm = nn.LayerNorm(feat)

    def forward(self, x: Tensor, padding_mask: Tensor | None) -> Tensor:
        x = self.self_attn_layer_norm(x + self.dropout1(self.self_attn(x, padding_mask)))
        return self.final_layer_norm(x + self.dropout3(self.fc2(self.dropout2(F.gelu(self.fc1(x))))))


class MultiheadAttention(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.embed_dim, self.num_heads, self.p_dropout = embed_dim, num_heads, dropout
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=True)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=True)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=True)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=True)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None) -> Tensor:
        return F.multi_head_attention_forward(
            query=x,
            key=x,
            value=x,
            embed_dim_to_check=self.embed_dim,
            num_heads=self.num_heads,
            in_proj_weight=torch.empty([0]),
            in_proj_bias=torch.cat((self.q_proj.bias, self.k_proj.bias, self.v_proj.bias)),
            bias_k=None,
            bias_v=None,
            add_zero_attn=False,
            dropout_p=self.p_dropout,
            out_proj_weight=self.out_proj.weight,
            out_proj_bias=self.out_proj.bias,
            training=False,
            key_padding_mask=key_padding_mask,
            need_weights=False,
            use_separate_proj_weight=True,
            q_proj_weight=self.q_proj.weight,
            k_proj_weight=self.k_proj.weight,
            v_proj_weight=self.v_proj.weight,
        )[0]
