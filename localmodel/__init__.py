"""The local model: an Anthropic Messages API server that plays `#script`s (PROTOCOL §5), the default model of
`serve` and the model of the tests. It imports nothing of the project but Django's command machinery."""
