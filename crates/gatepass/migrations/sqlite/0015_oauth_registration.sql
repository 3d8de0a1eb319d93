-- Dynamic client registration (RFC 7591): a client registered through /oauth/register is
-- limited (public, PKCE, authorization_code and refresh_token only, never first-party)
-- until an administrator promotes it by setting this to false.
ALTER TABLE oauth_clients ADD COLUMN limited INTEGER NOT NULL DEFAULT 0;
