import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { checkX509Svid, X509SvidChecker } from '../../src/identity/x509.js';
import { KU_CRL_SIGN, KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN, makeCertificate, makeSvid } from '../helpers/certs.js';

const ID = 'spiffe://example.org/ns/support/sa/support-agent';

describe('checkX509Svid', () => {
  it('builds certificates that node:crypto parses (the helper is sound)', () => {
    const cert = new X509Certificate(makeSvid(ID).pem);
    assert.equal(cert.subjectAltName, `URI:${ID}`);
    assert.equal(cert.ca, false);
  });

  it('accepts a leaf SVID whose only URI SAN is the principal', () => {
    assert.deepEqual(checkX509Svid(makeSvid(ID).urlEncoded, ID), { ok: true, value: undefined });
  });

  it('accepts extra DNS SANs beside the one URI SAN', () => {
    assert.equal(checkX509Svid(makeSvid(ID, { dns: ['support-agent.example.org'] }).urlEncoded, ID).ok, true);
  });

  const refused: [string, () => string, string, string][] = [
    ['two URI SANs', () => makeSvid(ID, { uris: [ID, 'spiffe://example.org/other'] }).urlEncoded, ID, 'has 2 URI SANs, must have exactly one'],
    ['no URI SAN', () => makeCertificate({ dns: ['a.example.org'], keyUsage: [KU_DIGITAL_SIGNATURE] }).urlEncoded, ID, 'has 0 URI SANs, must have exactly one'],
    ['a URI SAN that differs from the principal', () => makeSvid('spiffe://example.org/ns/other').urlEncoded, ID, 'its URI SAN is not the principal Envoy reported'],
    ['a CA certificate as peer', () => makeSvid(ID, { ca: true, keyUsage: [KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN] }).urlEncoded, ID, 'is a CA certificate'],
    ['a cA=true certificate whose key usage OpenSSL would not call a CA', () => makeSvid(ID, { ca: true, keyUsage: [KU_DIGITAL_SIGNATURE] }).urlEncoded, ID, 'is a CA certificate'],
    ['no key usage extension', () => makeCertificate({ uris: [ID] }).urlEncoded, ID, 'key usage lacks digitalSignature'],
    ['keyCertSign in key usage', () => makeSvid(ID, { keyUsage: [KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN] }).urlEncoded, ID, 'key usage allows certificate or CRL signing'],
    ['cRLSign in key usage', () => makeSvid(ID, { keyUsage: [KU_DIGITAL_SIGNATURE, KU_CRL_SIGN] }).urlEncoded, ID, 'key usage allows certificate or CRL signing'],
    ['garbage instead of a certificate', () => encodeURIComponent('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'), ID, 'cannot be parsed'],
    ['broken URL encoding', () => '%E0%A4%A', ID, 'cannot be parsed'],
  ];
  for (const [name, cert, principal, reason] of refused) {
    it(`refuses ${name} with invalid_identity`, () => {
      assert.deepEqual(checkX509Svid(cert(), principal), {
        ok: false,
        code: 'invalid_identity',
        message: `peer certificate is not a valid X.509-SVID: ${reason}`,
      });
    });
  }
});

describe('X509SvidChecker', () => {
  it('serves a certificate that passed from its cache, still comparing the principal', () => {
    const checker = new X509SvidChecker(2);
    const cert = makeSvid(ID).urlEncoded;
    assert.equal(checker.check(cert, ID).ok, true);
    assert.equal(checker.check(cert, ID).ok, true);
    assert.equal(checker.hits, 1);
    const other = checker.check(cert, 'spiffe://example.org/ns/other');
    assert.equal(!other.ok && other.code, 'invalid_identity');
    assert.equal(checker.hits, 2);
  });

  it('never caches a refusal', () => {
    const checker = new X509SvidChecker();
    const ca = makeSvid(ID, { ca: true, keyUsage: [KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN] }).urlEncoded;
    assert.equal(checker.check(ca, ID).ok, false);
    assert.equal(checker.check(ca, ID).ok, false);
    assert.equal(checker.hits, 0);
  });
});
