"""The language: `.sync` text -> the IR (`ir.Spec`), with every error located; and `fmt`.

`parse` (the grammar, loaded once, and the transformer), `syntax` (error messages for the parser),
`validate` (meaning: blocks, attributes, references -> the IR), `ir` (the frozen dataclasses),
`fmt` (the canonical formatting), `diagnostics` (rendering errors with a caret), `datapath` and
`endpoint` (what a spec may point at), `template_limits` and `template_values` (the one template
sandbox that validate and the mapping share).
"""
