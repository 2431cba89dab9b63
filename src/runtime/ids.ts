import { customAlphabet } from 'nanoid';

// Lower-case alphanumerics: safe in paths, URLs and file names, and easy to read out.
const token = customAlphabet('0123456789abcdefghijklmnopqrstuvwxyz', 16);

/** Makes prefixed ids (`s_…` session, `j_…` job, `m_…` message, `t_…` turn). */
export interface Ids {
  session(): string;
  job(): string;
  message(): string;
  turn(): string;
}

export const randomIds: Ids = {
  session: () => `s_${token()}`,
  job: () => `j_${token()}`,
  message: () => `m_${token()}`,
  turn: () => `t_${token()}`,
};

/** Ids are also used as file names: only what {@link randomIds} can make is accepted. */
export const ID_PATTERN = /^[a-z]_[0-9a-z]{1,64}$/;
