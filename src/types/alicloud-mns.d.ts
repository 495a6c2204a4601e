/**
 * The part of `@alicloud/mns` 1.2.0 (which ships no types) that Tributary uses: the queue API.
 * Answers are `{code, headers, body}` with the XML's elements as strings; errors are Error
 * objects named `MNS<Code>Error` (`MNSMessageNotExistError` for an empty queue).
 */
declare module '@alicloud/mns' {
  export interface MNSClientOptions {
    accessKeyId?: string;
    accessKeyID?: string;
    accessKeySecret: string;
    region?: string;
    /** `http(s)://host[:port]`: replaces the endpoint built from the account id and region. */
    endpoint?: string;
    secure?: boolean;
    internal?: boolean;
    vpc?: boolean;
    securityToken?: string;
    readTimeout?: number;
    connectTimeout?: number;
  }

  export interface MNSResponse<T> {
    code: number;
    headers: Record<string, string>;
    body: T;
  }

  /** A received message: every element as the text it had. */
  export interface MNSMessage {
    MessageId: string;
    ReceiptHandle: string;
    MessageBody: string;
    MessageBodyMD5: string;
    EnqueueTime: string;
    FirstDequeueTime: string;
    NextVisibleTime: string;
    DequeueCount: string;
    Priority: string;
    MessageGroupId?: string;
  }

  export interface MNSSendParams {
    MessageBody: string;
    DelaySeconds?: number;
    Priority?: number;
  }

  class MNSClient {
    constructor(accountId: string, options: MNSClientOptions);
    /**
     * One signed request (what every method calls): `type` is the XML's root element, whose
     * children become the body; `attentions` names the response headers to return.
     */
    request<T>(
      method: string,
      resource: string,
      type: string,
      body: string | Buffer,
      attentions?: string[],
      options?: { timeout?: number; headers?: Record<string, string> },
    ): Promise<MNSResponse<T>>;
    createQueue(name: string, params?: Record<string, unknown>): Promise<MNSResponse<unknown>>;
    deleteQueue(name: string): Promise<MNSResponse<unknown>>;
    getQueueAttributes(name: string): Promise<MNSResponse<Record<string, string>>>;
    sendMessage(
      queue: string,
      params: MNSSendParams,
    ): Promise<MNSResponse<{ MessageId: string; MessageBodyMD5: string }>>;
    batchSendMessage(
      queue: string,
      params: MNSSendParams[],
    ): Promise<MNSResponse<{ MessageId: string; MessageBodyMD5: string }[]>>;
    receiveMessage(queue: string, waitSeconds?: number): Promise<MNSResponse<MNSMessage>>;
    batchReceiveMessage(
      queue: string,
      numOfMessages: number,
      waitSeconds?: number,
    ): Promise<MNSResponse<MNSMessage[]>>;
    peekMessage(queue: string): Promise<MNSResponse<MNSMessage>>;
    batchPeekMessage(queue: string, numOfMessages: number): Promise<MNSResponse<MNSMessage[]>>;
    deleteMessage(queue: string, receiptHandle: string): Promise<MNSResponse<undefined>>;
    /** Partial failure: body is the failed handles with ErrorCode and ErrorMessage. */
    batchDeleteMessage(
      queue: string,
      receiptHandles: string[],
    ): Promise<
      MNSResponse<{ ErrorCode: string; ErrorMessage: string; ReceiptHandle: string }[] | undefined>
    >;
    changeMessageVisibility(
      queue: string,
      receiptHandle: string,
      visibilityTimeout: number,
    ): Promise<MNSResponse<{ ReceiptHandle: string; NextVisibleTime: string }>>;
  }

  export default MNSClient;
}
