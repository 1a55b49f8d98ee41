"""Network checks used by the dns and tls packs (stdlib ssl, dnspython, cryptography)."""
