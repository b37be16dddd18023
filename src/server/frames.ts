// Allowed decisions' CheckResponse frames, written from a template. For one workload and one
// policy version, respond.ts answers every allowed request with the same bytes but for the
// decision id (36 characters, written twice: the x-mandate-decision-id header and the
// decisionId metadata). Encoding the object anew took ~10 us of the main thread per Check under
// load (a size pass, a write pass, one string at a time); the template is one copy and two
// 36-byte writes.
//
// A template is made from respond.ts's own answer (respond() stays the only builder of a
// CheckResponse) and proven before use: the frame encoded for one id, with a second id written
// at the first one's offsets, must equal the frame encoded for the second id. A template that
// fails the proof is never used for its key; those answers are encoded as before.
//
// A template is kept per policy version and workload (its SPIFFE ID; none for an anonymous
// caller): what respond() reads of an allowed decision (one with no code) besides the id. The
// configuration is this object's (one per server).
// test/server/frames.test.ts varies every other field of a decision and compares bytes.

import { respond, type RespondConfig } from '../check/respond.js';
import type { Decision } from '../core/decision.js';
import { randomId } from '../core/ids.js';
import { encodeCheckResponseFrame } from './codec.js';

/** randomId()'s length: a template is only for ids of this length. */
const ID_LENGTH = 36;
/** Keys kept (one per workload and policy version in use); all dropped when full. */
const TEMPLATES_KEPT = 4096;

interface Template {
  readonly bytes: Buffer;
  /** Where the decision id is written. */
  readonly offsets: readonly number[];
}

/** A CheckResponse already written as its gRPC frame: the served Check's serializer sends it as it is (protos.ts). */
export class EncodedCheckResponse {
  constructor(readonly frame: Buffer) {}
}

export class AllowFrames {
  /**
   * Policy version -> the workload's SPIFFE ID ('' for no identity or an anonymous caller, whom
   * respond() answers alike) -> template. Looked up by the strings the decision already holds
   * (their hashes kept by V8): no key is built per Check.
   */
  private readonly templates = new Map<string, Map<string, Template | null>>();
  private kept = 0;

  constructor(private readonly config: RespondConfig) {}

  /**
   * What the Check handler answers for a decision: the templated frame when there is one, else
   * respond()'s CheckResponse (the served serializer encodes it: protos.ts).
   */
  answer(decision: Decision): EncodedCheckResponse | ReturnType<typeof respond> {
    const frame = this.frame(decision);
    return frame === null ? respond(decision, this.config) : new EncodedCheckResponse(frame);
  }

  /** respond(decision, config)'s frame for an allowed decision, or null when none is templated (encode it then). */
  frame(decision: Decision): Buffer | null {
    if (!decision.allowed || decision.code !== null || decision.decisionId.length !== ID_LENGTH) return null;
    const identity = decision.identity;
    const id = identity === null || identity.kind === 'anonymous' ? '' : identity.spiffe.id;
    let byId = this.templates.get(decision.policyVersion);
    if (byId === undefined) {
      if (this.kept >= TEMPLATES_KEPT) this.clear();
      this.templates.set(decision.policyVersion, (byId = new Map()));
    }
    let template = byId.get(id);
    if (template === undefined) {
      if (this.kept >= TEMPLATES_KEPT) {
        this.clear();
        return this.frame(decision);
      }
      template = this.make(decision);
      byId.set(id, template);
      this.kept++;
    }
    return template === null ? null : fill(template, decision.decisionId);
  }

  private clear(): void {
    this.templates.clear();
    this.kept = 0;
  }

  private make(decision: Decision): Template | null {
    const first = randomId();
    const second = randomId();
    const bytes = encodeCheckResponseFrame(respond({ ...decision, decisionId: first }, this.config));
    const offsets: number[] = [];
    for (let at = bytes.indexOf(first, 0, 'latin1'); at >= 0; at = bytes.indexOf(first, at + ID_LENGTH, 'latin1')) offsets.push(at);
    const template: Template = { bytes, offsets };
    const expected = encodeCheckResponseFrame(respond({ ...decision, decisionId: second }, this.config));
    return offsets.length > 0 && fill(template, second)?.equals(expected) === true ? template : null;
  }
}

/** The template with `id` written at its offsets; null when `id` is not ASCII (one byte a character). */
function fill(template: Template, id: string): Buffer | null {
  const out = Buffer.allocUnsafe(template.bytes.length);
  out.set(template.bytes);
  const offsets = template.offsets;
  for (let i = 0; i < ID_LENGTH; i++) {
    const c = id.charCodeAt(i);
    if (c > 0x7f) return null;
    for (let k = 0; k < offsets.length; k++) out[(offsets[k] as number) + i] = c;
  }
  return out;
}
