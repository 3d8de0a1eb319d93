-- A client may ask for ES256 ID tokens (OpenID Connect Dynamic Client Registration's
-- id_token_signed_response_alg) instead of the RS256 default.
ALTER TABLE oauth_clients ADD COLUMN id_token_alg TEXT NOT NULL DEFAULT 'RS256';
