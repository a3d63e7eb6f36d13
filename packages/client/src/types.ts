/**
 * Request and response types derived from the generated `paths` (src/generated/openapi.ts): the
 * client writes none by hand, so a change to the API's schemas changes these on the next
 * `npm run generate:client`.
 *
 *   RequestBody<'/v1/api-keys', 'post'>    the JSON body of POST /v1/api-keys
 *   QueryParams<'/v1/api-keys', 'get'>     its query parameters
 *   ResponseBody<'/v1/api-keys', 'post'>   the JSON body of its success (2xx) answer
 *   ListItem<'/v1/api-keys'>               one element of the list GET /v1/api-keys answers
 */
import type { paths } from './generated/openapi.js';

export type { paths, components, operations } from './generated/openapi.js';

export type HttpMethod = 'get' | 'put' | 'post' | 'delete' | 'patch' | 'head' | 'options' | 'trace';

/** The paths that have an operation for `M` (absent methods are generated as `M?: never`). */
export type PathsWith<M extends HttpMethod> = {
  [P in keyof paths]: paths[P] extends { [K in M]: object } ? P : never;
}[keyof paths];

/** The operation object of `M P`. */
export type Operation<P extends keyof paths, M extends HttpMethod> = paths[P] extends { [K in M]: infer O } ? O : never;

/** The JSON request body, or `never` when the operation takes none. */
export type RequestBody<P extends keyof paths, M extends HttpMethod> =
  Operation<P, M> extends { requestBody?: infer R } ? (NonNullable<R> extends { content: { 'application/json': infer B } } ? B : never) : never;

/** The query parameters (`never` when it has none). */
export type QueryParams<P extends keyof paths, M extends HttpMethod> = Operation<P, M> extends { parameters: { query?: infer Q } } ? Q : never;

/** 2xx statuses an operation may answer with a body (204 answers `undefined`). */
type SuccessStatus = 200 | 201 | 202 | 203 | 204 | 206;

/**
 * The JSON body of the operation's success answers (a union when it has several), `undefined` for
 * a success without a JSON body (204, or one the document describes without a schema).
 */
export type ResponseBody<P extends keyof paths, M extends HttpMethod> =
  Operation<P, M> extends { responses: infer R }
    ? { [S in keyof R & SuccessStatus]: R[S] extends { content: { 'application/json': infer B } } ? B : undefined }[keyof R & SuccessStatus]
    : never;

/** An element of a list page (`{ object: "list", data, hasMore }`). */
export type ItemOf<Page> = Page extends { data: ReadonlyArray<infer Item> } ? Item : unknown;

/** An element of what `GET P` lists. */
export type ListItem<P extends PathsWith<'get'>> = ItemOf<ResponseBody<P, 'get'>>;
