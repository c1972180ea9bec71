"""SGLang's native API: POST /generate, as scripts written against an SGLang server call it."""
