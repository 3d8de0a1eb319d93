-- Resource indicators (RFC 8707): the resources a client may ask tokens for, the resource
-- an authorization request named (bound to its code), and the resource a grant was
-- authorized for (its refreshed access tokens keep that audience).

-- Absolute URIs without fragments, space-separated (URIs cannot contain a space); the
-- client's `resource` (the default audience) is allowed besides these.
ALTER TABLE oauth_clients ADD COLUMN resources TEXT NOT NULL DEFAULT '';
-- The `resource` of the authorization request, when it had one.
ALTER TABLE oauth_codes ADD COLUMN resource TEXT;
-- The resource the grant was authorized for (NULL: any of the client's).
ALTER TABLE sessions ADD COLUMN resource TEXT;
