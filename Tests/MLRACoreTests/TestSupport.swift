import MLRACore
@_exported import MLRATestSupport
import XCTest

/// Small shapes that exercise every rule: d_l ≠ d_n, odd head counts where legal.
enum Shapes {
    static func latent(_ v: VariantName, d: Int = 48, h: Int = 4, dq: Int = 24, dc: Int = 32, dn: Int = 12, dr: Int = 8) -> AttentionConfig {
        AttentionConfig(variant: v, nEmbd: d, nHead: h, qLoraRank: dq, kvLoraRank: dc, qkNopeHeadDim: dn, qkRopeHeadDim: dr)
    }
    static func grouped(_ v: VariantName, d: Int = 40, h: Int = 6, dh: Int = 10, group: Int? = nil) -> AttentionConfig {
        AttentionConfig(variant: v, nEmbd: d, nHead: h, headDim: dh, groupSize: group)
    }

    /// Per variant, configurations covering the pitfalls of method §3.
    static let all: [AttentionConfig] = [
        grouped(.mha, h: 3), grouped(.mqa, h: 5), grouped(.gqa, h: 6, group: 3), grouped(.gqa, h: 8, dh: 16, group: 2),
        latent(.mla, h: 3, dc: 20),                 // odd heads, d_l = 20 ≠ d_n = 12
        latent(.mla, h: 4, dc: 12),                 // d_l = d_n
        latent(.gla2, h: 6, dc: 40),                // d_l = 20
        latent(.gla2, h: 2, dc: 24, dn: 12),        // d_l = 12 = d_n
        latent(.mlra2, h: 6, dc: 32),               // d_l = 8
        latent(.mlra2, h: 2, dc: 48),
        latent(.mlra4, h: 3, dc: 32),               // odd heads, d_l = 8
        latent(.mlra4, h: 4, dc: 64, dn: 8, dr: 4),  // d_l = 16 ≠ d_n = 8
    ]
}

